"""`pharmasync participants` and `pharmasync lots`: sign contract transactions with a key file
and send them to the ledger (POST /v1/tx), and read a lot's public facts, checking their
proofs against the state root the ledger answers (GET /v1/lots/{gtin}/{lot}).

Keys are the files `pharmasync cloud keygen` writes (device/cliutil.read_secret reads them);
a participant is named by its did:key or by the public key file beside its secret
(`@maker.pub`: x-only hex, read as the did:key of its even-y point, the same x-only key
the ledger knows participants by; docs/contracts.md §3).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp

from cloud import settings
from cloud.commands import post_json
from cloud.contracts import didkey, lots, tx
from cloud.contracts.statetree_proof import ProofError, proof_from_json, verify_proof
from device.cliutil import examples, print_record, read_secret
from gateway import jsonbound
from gateway.jcs import canonicalize

_CLOUD = f"http://127.0.0.1:{settings.DEFAULT_PORT}"
GTIN = "09506000134352"  # GS1's example GTIN-14
# Storage profiles by name (cloud/contracts/lots_fields.py: centi-°C, seconds).
PROFILES: dict[str, dict[str, Any]] = {
    "2-8C": {"low_cc": 200, "high_cc": 800},
    "15-25C": {"low_cc": 1500, "high_cc": 2500},
}
_PROFILE_REST = {
    "delay_consecutive_s": 900,
    "delay_cumulative_s": 3600,
    "hysteresis_cc": 50,
    "max_gap_s": 3600,
    "needs_licence": 0,
}
ROLES = ("manufacturer", "distributor", "retailer", "pharmacy", "operator_team")


def participant(text: str) -> str:
    """argparse type: a did:key, or @FILE holding an x-only key (hex) as `cloud keygen`
    writes it beside the secret, read as the did:key of its even-y point."""
    if text.startswith("@"):
        try:
            xonly = bytes.fromhex(Path(text[1:]).read_text().strip())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise argparse.ArgumentTypeError(
                f"cannot read a hex key from {text[1:]}: {e}"
            ) from None
        text = "did:key:" if len(xonly) != 32 else didkey.from_point(b"\x02" + xonly)
    try:
        didkey.to_xonly(text)
    except didkey.DidKeyError as e:
        raise argparse.ArgumentTypeError(f"got {text[:80]!r}: {e.detail}") from None
    return text


def _common(parser: argparse.ArgumentParser, key_help: str | None) -> None:
    parser.add_argument("--cloud", default=_CLOUD, help="the ledger's URL (default: %(default)s)")
    if key_help is not None:
        parser.add_argument("--key", type=Path, required=True, help=key_help)
    parser.add_argument("--json", action="store_true", help="print JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `participants` and `lots` command groups to the top-level parser."""
    group = subparsers.add_parser(
        "participants",
        help="admit participants to the contracts (the regulator signs)",
        epilog=examples(_ADMIT_MAKER),
    )
    commands = group.add_subparsers(dest="participants_command", metavar="COMMAND", required=True)
    admit = commands.add_parser(
        "admit",
        help="admit a participant with a role",
        description="Sign a participants/admit transaction with the regulator's key (the one "
        "`cloud serve --regulator` names) and send it.",
        epilog=examples(_ADMIT_MAKER, _ADMIT_WHOLESALER),
    )
    admit.add_argument("did", type=participant, metavar="DID|@FILE.pub")
    admit.add_argument("--role", choices=ROLES, required=True)
    admit.add_argument("--name", required=True)
    admit.add_argument("--region", required=True, help="ISO 3166-1 alpha-2, e.g. DE")
    admit.add_argument("--licence", required=True, help="licence number")
    admit.add_argument("--issuer", required=True, help="the licence's issuer")
    _common(admit, "the regulator's secret key file")
    admit.set_defaults(handler=_admit)

    group = subparsers.add_parser(
        "lots",
        help="commission, ship and receive lots on the ledger; read a lot's public facts",
        epilog=examples(_COMMISSION, _STATUS),
    )
    commands = group.add_subparsers(dest="lots_command", metavar="COMMAND", required=True)
    commission = commands.add_parser(
        "commission",
        help="commission a new lot (a manufacturer)",
        epilog=examples(_COMMISSION),
    )
    _lot(commission)
    commission.add_argument("--expiry", required=True, help="YYMMDD (GS1 AI 17)")
    commission.add_argument("--quantity", type=int, required=True)
    commission.add_argument("--unit", default="pack", help="default: pack")
    commission.add_argument("--profile", choices=sorted(PROFILES), default="2-8C")
    _common(commission, "the manufacturer's secret key file")
    commission.set_defaults(handler=_commission)

    ship = commands.add_parser(
        "ship", help="ship units of a lot you hold to a participant", epilog=examples(_SHIP)
    )
    _lot(ship)
    ship.add_argument("--shipment", required=True, help="a shipment id of your choice")
    ship.add_argument("--to", type=participant, required=True, metavar="DID|@FILE.pub")
    ship.add_argument("--quantity", type=int, required=True)
    ship.add_argument("--order-ref", help="the order reference (PO / invoice)")
    _common(ship, "the holder's secret key file")
    ship.set_defaults(handler=_ship)

    receive = commands.add_parser(
        "receive", help="receive a shipment sent to you", epilog=examples(_RECEIVE)
    )
    receive.add_argument("--shipment", required=True)
    receive.add_argument("--quantity", type=int, required=True, help="the units counted")
    receive.add_argument("--order-ref", help="your own purchase order for it")
    _common(receive, "the receiver's secret key file")
    receive.set_defaults(handler=_receive)

    status = commands.add_parser(
        "status",
        help="a lot's public facts, their proofs checked against the state root",
        epilog=examples(_STATUS),
    )
    _lot(status)
    _common(status, None)
    status.set_defaults(handler=_status)


_ADMIT_MAKER = (
    "pharmasync participants admit @maker.pub --role manufacturer --name 'Acme Pharma' "
    f"--region DE --licence MIA-1 --issuer BfArM --key regulator.key --cloud {_CLOUD}"
)
_ADMIT_WHOLESALER = (
    "pharmasync participants admit @wholesaler.pub --role distributor --name 'Nord GmbH' "
    f"--region DE --licence WDA-7 --issuer BfArM --key regulator.key --cloud {_CLOUD}"
)
_COMMISSION = (
    f"pharmasync lots commission --gtin {GTIN} --lot L1 --expiry 271231 --quantity 100 "
    f"--key maker.key --cloud {_CLOUD}"
)
_SHIP = (
    f"pharmasync lots ship --gtin {GTIN} --lot L1 --shipment S1 --to @wholesaler.pub "
    f"--quantity 60 --key maker.key --cloud {_CLOUD}"
)
_RECEIVE = (
    "pharmasync lots receive --shipment S1 --quantity 60 --order-ref PO-2027-118 "
    f"--key wholesaler.key --cloud {_CLOUD}"
)
_STATUS = f"pharmasync lots status --gtin {GTIN} --lot L1 --cloud {_CLOUD}"


def _lot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gtin", required=True, help="GTIN-14")
    parser.add_argument("--lot", required=True, help="lot number (GS1 AI 10)")


def _send(args: argparse.Namespace, contract: str, tx_type: str, fields: dict[str, Any]) -> int:
    """Sign and send one transaction; print where it was applied (exit 0), or why not (1;
    2 for an unusable key file)."""
    if (secret := read_secret(args.key, "--key")) is None:
        return 2
    try:
        signed = tx.make(contract, tx_type, fields, secret)
    except tx.TxError as e:
        print(f"error: {e.reason}: {e.detail}", file=sys.stderr)
        return 2
    try:
        status, answer = asyncio.run(
            post_json(f"{args.cloud.rstrip('/')}/v1/tx", signed.to_envelope())
        )
    except (aiohttp.ClientError, ValueError) as e:
        print(f"error: {args.cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if status != 201:
        print(
            f"error: HTTP {status}: {answer.get('reason')}: {answer.get('detail')}", file=sys.stderr
        )
        return 1
    print_record({"applied": f"{contract}/{tx_type}", **answer}, args.json)
    return 0


def _admit(args: argparse.Namespace) -> int:
    licence = {"number": args.licence, "issuer": args.issuer}
    fields = {"did": args.did, "role": args.role, "name": args.name, "region": args.region}
    return _send(args, "participants", "admit", {**fields, "licence": licence})


def _commission(args: argparse.Namespace) -> int:
    profile = {**PROFILES[args.profile], **_PROFILE_REST}
    fields = {"gtin": args.gtin, "lot": args.lot, "expiry": args.expiry}
    fields |= {"quantity": args.quantity, "unit": args.unit, "profile": profile}
    return _send(args, "lots", "commission", fields)


def _ship(args: argparse.Namespace) -> int:
    fields = {"gtin": args.gtin, "lot": args.lot, "shipment": args.shipment}
    fields |= {"receiver": args.to, "quantity": args.quantity}
    if args.order_ref is not None:
        fields["order_ref"] = args.order_ref
    return _send(args, "lots", "ship", fields)


def _receive(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"shipment": args.shipment, "quantity": args.quantity}
    if args.order_ref is not None:
        fields["order_ref"] = args.order_ref
    return _send(args, "lots", "receive", fields)


async def _get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        answer = jsonbound.loads(await resp.read(), max_bytes=1 << 20, what="answer")
    if not isinstance(answer, dict):
        raise jsonbound.JsonError("answer", type(answer).__name__, "a JSON object")
    return resp.status, answer


def _status(args: argparse.Namespace) -> int:
    """Print a lot's public records after checking each proof against the answered root
    (exit 1 if one fails: the ledger's answer does not hold together)."""
    url = f"{args.cloud.rstrip('/')}/v1/lots/{args.gtin}/{args.lot}"
    try:
        status, answer = asyncio.run(_get(url))
    except (aiohttp.ClientError, ValueError) as e:
        print(f"error: {args.cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        print(
            f"error: HTTP {status}: {answer.get('reason')}: {answer.get('detail')}", file=sys.stderr
        )
        return 1
    try:
        root = bytes.fromhex(answer["state"]["root"])
        gtin = str(answer["gtin"])  # as the ledger keys it: a GTIN-13 is padded to 14 digits
        if gtin.lstrip("0") != args.gtin.lstrip("0") or answer["lot"] != args.lot:
            raise ValueError(f"asked for {args.gtin}/{args.lot}, answered {gtin}/{answer['lot']}")
        found: dict[str, object] = {"gtin": gtin, "lot": args.lot, "root": root.hex()}
        for rtype in (lots.LOT, lots.QUALITY, lots.RECALL):
            record = answer["records"][rtype.name]
            value = None if record["value"] is None else canonicalize(record["value"])
            proof = proof_from_json(record["proof"])
            verify_proof(root, rtype.key(gtin, args.lot), value, proof)
            found[rtype.name] = "absent" if record["value"] is None else record["value"]
    except (KeyError, TypeError, ValueError, ProofError) as e:
        print(
            f"error: the ledger's answer does not verify: {type(e).__name__}: {e}", file=sys.stderr
        )
        return 1
    found["proofs"] = "verified against the root"
    print_record(found, args.json)
    return 0
