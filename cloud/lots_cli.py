"""`pharmasync participants`, `pharmasync lots` and `pharmasync feed`: sign contract
transactions with a key file and send them to the ledger (POST /v1/tx); read a lot's public
facts, checking their proofs against the state root the ledger answers (GET /v1/lots/{gtin}/
{lot}); sign in with the key file (POST /v1/auth/*) to read a recall trace (GET /v1/lots/
{gtin}/{lot}/trace) or one's notification feed (GET /v1/feed, /v1/feed/stream).

Keys are the files `pharmasync cloud keygen` writes (device/cliutil.read_secret reads them);
a participant is named by its did:key or by the public key file beside its secret
(`@maker.pub`: x-only hex, read as the did:key of its even-y point, the same x-only key
the ledger knows participants by; docs/contracts.md §3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from cloud import lots_epcis_cli, lots_qr_cli
from cloud.api import sse
from cloud.audit.log_client import FetchError
from cloud.audit.replay import sign_in
from cloud.cli_client import (
    CLOUD,
    MAX_ANSWER,
    common_options,
    get_json,
    read_as,
    refused,
    send,
    signed_in_get,
)
from cloud.contracts import access, didkey, lots
from cloud.contracts.statetree_proof import ProofError, proof_from_json, verify_proof
from device.cliutil import examples, positive_int, print_record, read_secret
from gateway import jsonbound
from gateway.jcs import canonicalize

RECONNECT_S = 3.0  # `feed --follow`: the wait before resuming a stream the ledger ended
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
    admit.add_argument(
        "--owner-key",
        type=participant,
        action="append",
        default=[],
        metavar="DID|@FILE.pub",
        help="a registry owner key whose boxes the participant controls (repeatable)",
    )
    common_options(admit, "the regulator's secret key file")
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
    common_options(commission, "the manufacturer's secret key file")
    commission.set_defaults(handler=_commission)

    ship = commands.add_parser(
        "ship",
        help="ship units of a lot you hold to a participant",
        description="Sign a lots/ship. With --serials it names the serialized packs it "
        "carries (registered in the lot, not decommissioned; at most --quantity), packed in "
        "the logistic unit --sscc if given: the EPCIS export shows their packing "
        "(AggregationEvent) before the shipping and their unpacking at the receive.",
        epilog=examples(_SHIP, _SHIP_PACKED),
    )
    _lot(ship)
    ship.add_argument("--shipment", required=True, help="a shipment id of your choice")
    ship.add_argument("--to", type=participant, required=True, metavar="DID|@FILE.pub")
    ship.add_argument("--quantity", type=int, required=True)
    ship.add_argument("--order-ref", help="the order reference (PO / invoice)")
    ship.add_argument(
        "--serials", type=Path, metavar="FILE", help="the packs shipped: one serial a line"
    )
    ship.add_argument(
        "--sscc", metavar="N", help="the SSCC (GS1 AI 00, 18 digits) of the unit holding them"
    )
    common_options(ship, "the holder's secret key file")
    ship.set_defaults(handler=_ship)

    receive = commands.add_parser(
        "receive", help="receive a shipment sent to you", epilog=examples(_RECEIVE)
    )
    receive.add_argument("--shipment", required=True)
    receive.add_argument("--quantity", type=int, required=True, help="the units counted")
    receive.add_argument("--order-ref", help="your own purchase order for it")
    common_options(receive, "the receiver's secret key file")
    receive.set_defaults(handler=_receive)

    prefix = commands.add_parser(
        "gs1-prefix",
        help="declare your GS1 company prefixes (a manufacturer): EPCIS then reads EPC URNs",
        description="Sign a lots/gs1-prefix: the GS1 company prefixes (6 to 12 digits) of your "
        "GTINs, public. EPCIS queries and captured documents may then name your lots and packs "
        "as EPC URNs (urn:epc:class:lgtin:…, urn:epc:id:sgtin:…) split at them, and an EPCIS "
        "reader asking GS1-EPC-Format: Always_EPC_URN gets them so.",
        epilog=examples(_GS1_PREFIX),
    )
    prefix.add_argument(
        "--prefix", action="append", required=True, metavar="DIGITS", help="once per prefix"
    )
    common_options(prefix, "the manufacturer's secret key file")
    prefix.set_defaults(handler=_gs1_prefix)

    status = commands.add_parser(
        "status",
        help="a lot's public facts, their proofs checked against the state root",
        epilog=examples(_STATUS),
    )
    _lot(status)
    common_options(status, None)
    status.set_defaults(handler=_status)
    _register_recall(subparsers, commands)
    _register_history(commands)
    lots_qr_cli.register(commands)
    lots_epcis_cli.register(commands)  # pharmasync lots epcis


_ADMIT_MAKER = (
    "pharmasync participants admit @maker.pub --role manufacturer --name 'Acme Pharma' "
    f"--region DE --licence MIA-1 --issuer BfArM --key regulator.key --cloud {CLOUD}"
)
_ADMIT_WHOLESALER = (
    "pharmasync participants admit @wholesaler.pub --role distributor --name 'Nord GmbH' "
    f"--region DE --licence WDA-7 --issuer BfArM --key regulator.key --cloud {CLOUD}"
)
_COMMISSION = (
    f"pharmasync lots commission --gtin {GTIN} --lot L1 --expiry 271231 --quantity 100 "
    f"--key maker.key --cloud {CLOUD}"
)
_SHIP = (
    f"pharmasync lots ship --gtin {GTIN} --lot L1 --shipment S1 --to @wholesaler.pub "
    f"--quantity 60 --key maker.key --cloud {CLOUD}"
)
_SHIP_PACKED = (
    f"pharmasync lots ship --gtin {GTIN} --lot L1 --shipment S2 --to @wholesaler.pub "
    f"--quantity 20 --serials serials.txt --sscc 106141411234567897 --key maker.key "
    f"--cloud {CLOUD}"
)
_RECEIVE = (
    "pharmasync lots receive --shipment S1 --quantity 60 --order-ref PO-2027-118 "
    f"--key wholesaler.key --cloud {CLOUD}"
)
_STATUS = f"pharmasync lots status --gtin {GTIN} --lot L1 --cloud {CLOUD}"
_GS1_PREFIX = f"pharmasync lots gs1-prefix --prefix 9506000 --key maker.key --cloud {CLOUD}"


def _lot(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gtin", required=True, help="GTIN-14")
    parser.add_argument("--lot", required=True, help="lot number (GS1 AI 10)")


# -- the transactions' fields, built the one way the commands and the demo send them ------


def admit_fields(
    did: str,
    role: str,
    name: str,
    region: str,
    licence: tuple[str, str],
    owner_keys: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """participants/admit: `licence` is (number, issuer), `owner_keys` did:keys of the
    registry owner keys whose boxes the participant controls."""
    fields: dict[str, Any] = {"did": did, "role": role, "name": name, "region": region}
    if owner_keys:
        fields["owner_keys"] = [didkey.to_xonly(key).hex() for key in owner_keys]
    return {**fields, "licence": {"number": licence[0], "issuer": licence[1]}}


def commission_fields(
    gtin: str, lot: str, expiry: str, quantity: int, unit: str, profile: dict[str, Any]
) -> dict[str, Any]:
    """lots/commission: `profile` the storage profile's signed form (PROFILES + rest)."""
    fields = {"gtin": gtin, "lot": lot, "expiry": expiry}
    return fields | {"quantity": quantity, "unit": unit, "profile": profile}


def storage_profile(name: str) -> dict[str, Any]:
    """The signed storage profile `name` (a key of PROFILES), with the default delays."""
    return {**PROFILES[name], **_PROFILE_REST}


def ship_fields(
    gtin: str,
    lot: str,
    shipment: str,
    receiver: str,
    quantity: int,
    order_ref: str | None,
    serials: list[str] | None = None,
    sscc: str | None = None,
) -> dict[str, Any]:
    """lots/ship of `quantity` units to `receiver` (a did:key), naming the packs `serials`
    in the unit `sscc` if given."""
    fields: dict[str, Any] = {"gtin": gtin, "lot": lot, "shipment": shipment}
    fields |= {"receiver": receiver, "quantity": quantity}
    if order_ref is not None:
        fields["order_ref"] = order_ref
    if serials is not None:
        fields["serials"] = serials
    if sscc is not None:
        fields["sscc"] = sscc
    return fields


def receive_fields(shipment: str, quantity: int, order_ref: str | None) -> dict[str, Any]:
    """lots/receive of a shipment, `quantity` the units counted."""
    fields: dict[str, Any] = {"shipment": shipment, "quantity": quantity}
    if order_ref is not None:
        fields["order_ref"] = order_ref
    return fields


def attach_fields(
    box: str, start_ms: int, end_ms: int | None, target: dict[str, str]
) -> dict[str, Any]:
    """lots/attach of `box` (a did:key) from `start_ms` (the transaction's own time) to
    `end_ms` (None: open) on `target`: {"shipment": id} or {"gtin": …, "lot": …}."""
    return {"box": didkey.to_xonly(box).hex(), "start": start_ms, "end": end_ms, **target}


def recall_fields(gtin: str, lot: str, recall_class: str, reason: str) -> dict[str, Any]:
    """lots/recall of a lot and its descendants."""
    return {"gtin": gtin, "lot": lot, "class": recall_class, "reason": reason}


def _admit(args: argparse.Namespace) -> int:
    licence = (args.licence, args.issuer)
    fields = admit_fields(args.did, args.role, args.name, args.region, licence, args.owner_key)
    return send(args, "participants", "admit", fields)


def _commission(args: argparse.Namespace) -> int:
    profile = storage_profile(args.profile)
    fields = commission_fields(args.gtin, args.lot, args.expiry, args.quantity, args.unit, profile)
    return send(args, "lots", "commission", fields)


def _ship(args: argparse.Namespace) -> int:
    if args.sscc is not None and args.serials is None:
        print("error: --sscc names the unit holding the packs: give --serials too", file=sys.stderr)
        return 2
    serials = None
    if args.serials is not None:
        try:
            serials = _serials_file(str(args.serials))
        except argparse.ArgumentTypeError as e:
            print(f"error: --serials: {e}", file=sys.stderr)
            return 2
    fields = ship_fields(
        args.gtin, args.lot, args.shipment, args.to, args.quantity, args.order_ref,
        serials, args.sscc,
    )  # fmt: skip
    return send(args, "lots", "ship", fields)


def _gs1_prefix(args: argparse.Namespace) -> int:
    return send(args, "lots", "gs1-prefix", {"prefixes": args.prefix})


def _receive(args: argparse.Namespace) -> int:
    return send(
        args, "lots", "receive", receive_fields(args.shipment, args.quantity, args.order_ref)
    )


def _status(args: argparse.Namespace) -> int:
    """Print a lot's public records after checking each proof against the answered root
    (exit 1 if one fails: the ledger's answer does not hold together)."""
    url = f"{args.cloud.rstrip('/')}/v1/lots/{args.gtin}/{args.lot}"
    try:
        status, answer = asyncio.run(get_json(url))
    except (aiohttp.ClientError, ValueError) as e:
        print(f"error: {args.cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        return refused(status, answer)
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


# -- split, attach, hold, dispose, recall, trace; the feed ---------------------------------

_SPLIT = (
    f"pharmasync lots split --gtin {GTIN} --lot L1 --child L1-A:30 --child L1-B:30 "
    f"--key wholesaler.key --cloud {CLOUD}"
)
_ATTACH = (
    f"pharmasync lots attach --box @box.pub --gtin {GTIN} --lot L1 --hours 48 "
    f"--key maker.key --cloud {CLOUD}"
)
_ATTACH_SHIPMENT = (
    f"pharmasync lots attach --box @box.pub --shipment S2 --key maker.key --cloud {CLOUD}"
)
_HOLD = (
    f"pharmasync lots hold --gtin {GTIN} --lot L1-B --kind damage --reason 'cartons crushed' "
    f"--key wholesaler.key --cloud {CLOUD}"
)
_DISPOSE = (
    f"pharmasync lots dispose --gtin {GTIN} --lot L1-B --outcome released "
    f"--reason 'inspected: packs intact' --key maker.key --cloud {CLOUD}"
)
_RECALL = (
    f"pharmasync lots recall --gtin {GTIN} --lot L1 --class II --reason 'out of specification' "
    f"--key maker.key --cloud {CLOUD}"
)
_TRACE = f"pharmasync lots trace --gtin {GTIN} --lot L1 --key maker.key --cloud {CLOUD}"
_TRACE_REGULATOR = (
    f"pharmasync lots trace --gtin {GTIN} --lot L1 --key regulator.key --json --cloud {CLOUD}"
)
_FEED = f"pharmasync feed --key wholesaler.key --cloud {CLOUD}"
_FEED_FOLLOW = f"pharmasync feed --key wholesaler.key --after 2 --follow --cloud {CLOUD}"


def _child(text: str) -> dict[str, Any]:
    """argparse type: LOT:QUANTITY, a child lot of a split."""
    lot, sep, quantity = text.rpartition(":")
    if not sep or not lot or not quantity.isdigit():
        raise argparse.ArgumentTypeError(f"got {text!r}, want LOT:QUANTITY (L1-A:30)")
    return {"lot": lot, "quantity": int(quantity)}


def _register_recall(
    subparsers: argparse._SubParsersAction, commands: argparse._SubParsersAction
) -> None:
    """Add `lots split|attach|hold|dispose|recall|trace` and the `feed` command."""
    split = commands.add_parser(
        "split",
        help="split your whole holding of a lot into child lots",
        description="Sign a lots/split: the child lots' quantities must sum to what you hold.",
        epilog=examples(_SPLIT),
    )
    _lot(split)
    split.add_argument(
        "--child", type=_child, action="append", required=True, metavar="LOT:QUANTITY"
    )
    split.add_argument(
        "--serials",
        type=_child_serials,
        action="append",
        default=[],
        metavar="LOT=FILE",
        help="a lot with serialized packs: the serials (FILE: one a line) child LOT gets, as "
        "many as its quantity; once per child (docs/contracts.md §6)",
    )
    common_options(split, "the holder's secret key file")
    split.set_defaults(handler=_split)

    attach = commands.add_parser(
        "attach",
        help="attach a box (its QR label: the box's key) to a lot you store or a shipment",
        description="Sign a lots/attach: the box's readings from now on count for the lot "
        "(its storage with you) or for your shipment in transit. The window starts at the "
        "transaction's time and can later only be extended.",
        epilog=examples(_ATTACH, _ATTACH_SHIPMENT),
    )
    attach.add_argument("--box", type=participant, required=True, metavar="DID|@BOX.pub")
    attach.add_argument("--shipment", help="a shipment you sent (else --gtin and --lot)")
    attach.add_argument("--gtin", help="GTIN-14 of a lot you hold")
    attach.add_argument("--lot", help="lot number (GS1 AI 10)")
    attach.add_argument("--hours", type=positive_int, help="the window's length (default: open)")
    common_options(attach, "the secret key file of the participant controlling the box's owner key")
    attach.set_defaults(handler=_attach)

    hold = commands.add_parser(
        "hold",
        help="quarantine a lot you hold (a hold or damage report)",
        epilog=examples(_HOLD),
    )
    _lot(hold)
    hold.add_argument("--kind", choices=lots.HOLD_KINDS, default="hold")
    hold.add_argument("--reason", required=True)
    common_options(hold, "the holder's secret key file")
    hold.set_defaults(handler=_hold)

    dispose = commands.add_parser(
        "dispose",
        help="release or reject a quarantined lot (its manufacturer's QA, or the regulator)",
        epilog=examples(_DISPOSE),
    )
    _lot(dispose)
    dispose.add_argument("--outcome", choices=(lots.RELEASED, lots.REJECTED), required=True)
    dispose.add_argument("--reason", required=True)
    common_options(dispose, "the manufacturer's or the regulator's secret key file")
    dispose.set_defaults(handler=_dispose)

    recall = commands.add_parser(
        "recall",
        help="recall a lot and every lot split from it (its manufacturer, or the regulator)",
        description="Sign a lots/recall: the lot and its descendants can no longer be "
        "shipped, received, split or dispensed, and every holder is told in its feed.",
        epilog=examples(_RECALL),
    )
    _lot(recall)
    recall.add_argument("--class", dest="recall_class", choices=lots.RECALL_CLASSES, required=True)
    recall.add_argument("--reason", required=True)
    common_options(recall, "the manufacturer's or the regulator's secret key file")
    recall.set_defaults(handler=_recall)

    trace = commands.add_parser(
        "trace",
        help="every lot split from a lot, who holds how many, what is in transit",
        description="Sign in with the key and read the lot's recall trace as the access "
        "matrix lets you: the holders and shipments of the legs you read (a manufacturer: "
        "all; a retailer or pharmacy: its legs, for a lot it is involved in), or the "
        "regulator's figures per role and region.",
        epilog=examples(_TRACE, _TRACE_REGULATOR),
    )
    _lot(trace)
    common_options(trace, "your secret key file (to sign in)")
    trace.set_defaults(handler=_trace)

    feed = subparsers.add_parser(
        "feed",
        help="your notifications: shipments to you, recalls and quarantines of lots you hold",
        description="Sign in with the key and print your feed's events after --after; with "
        "--follow, keep printing them as they happen until Ctrl-C (signing in again and "
        "resuming where it was when the ledger ends the stream: the sign-in expired).",
        epilog=examples(_FEED, _FEED_FOLLOW),
    )
    feed.add_argument("--after", type=int, default=0, help="the last event id seen (default 0)")
    feed.add_argument("--follow", action="store_true", help="keep printing new events")
    common_options(feed, "your secret key file (to sign in)")
    feed.set_defaults(handler=_feed)


def _child_serials(text: str) -> tuple[str, list[str]]:
    """argparse type: LOT=FILE, the serials (one a line) a child lot of a split gets."""
    lot, sep, name = text.partition("=")
    if not sep or not lot or not name:
        raise argparse.ArgumentTypeError(f"got {text!r}, want LOT=FILE (L1-A=a.txt)")
    return lot, _serials_file(name)


def _serials_file(name: str) -> list[str]:
    """argparse type: FILE, serials one a line (blank lines skipped)."""
    try:
        lines = Path(name).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read serials from {name}: {e}") from None
    return [line.strip() for line in lines if line.strip()]


def _split(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"gtin": args.gtin, "lot": args.lot, "children": args.child}
    if args.serials:
        fields["serials"] = dict(args.serials)
    return send(args, "lots", "split", fields)


def _attach(args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)  # the transaction's own time: the window starts there
    end = None if args.hours is None else now + args.hours * 3_600_000
    if args.shipment is not None:
        target = {"shipment": args.shipment}
    elif args.gtin is not None and args.lot is not None:
        target = {"gtin": args.gtin, "lot": args.lot}
    else:
        print("error: give --shipment, or --gtin and --lot", file=sys.stderr)
        return 2
    return send(args, "lots", "attach", attach_fields(args.box, now, end, target), time_ms=now)


def hold_fields(gtin: str, lot: str, kind: str, reason: str) -> dict[str, Any]:
    """lots/hold of a lot the signer holds: `kind` one of lots.HOLD_KINDS."""
    return {"gtin": gtin, "lot": lot, "kind": kind, "reason": reason}


def dispose_fields(gtin: str, lot: str, outcome: str, reason: str) -> dict[str, Any]:
    """lots/dispose of a quarantined lot: `outcome` released or rejected."""
    return {"gtin": gtin, "lot": lot, "outcome": outcome, "reason": reason}


def _hold(args: argparse.Namespace) -> int:
    fields = hold_fields(args.gtin, args.lot, args.kind, args.reason)
    return send(args, "lots", "hold", fields)


def _dispose(args: argparse.Namespace) -> int:
    fields = dispose_fields(args.gtin, args.lot, args.outcome, args.reason)
    return send(args, "lots", "dispose", fields)


def _recall(args: argparse.Namespace) -> int:
    fields = recall_fields(args.gtin, args.lot, args.recall_class, args.reason)
    return send(args, "lots", "recall", fields)


def _trace(args: argparse.Namespace) -> int:
    """Print a lot's trace: one line per lot (its status, recall, holders, shipments in
    transit, units dispensed), or the global figures per role and region."""
    got = signed_in_get(args, f"/v1/lots/{args.gtin}/{args.lot}/trace")
    if isinstance(got, int):
        return got
    status, answer = got
    if status != 200:
        return refused(status, answer)
    if args.json:
        print(json.dumps(answer, indent=2))
    elif answer["view"] == "global":
        print_record({"lot": f"{answer['gtin']}/{answer['lot']}", **answer["totals"]}, False)
        for row in answer["by_role_region"]:
            print(
                f"  {row['role']:<13} {row['region']}  {row['holders']} holders, "
                f"{row['units']} units held, {row['in_transit']} in transit to them"
            )
    else:
        legs = ", ".join(access.TITLES[leg] for leg in answer["legs"])
        print(f"{answer['gtin']}/{answer['lot']}: holders and shipments of the legs {legs}")
        for t in answer["lots"]:
            recall = f"recalled (class {t['recall']['class']})" if t["recall"] else "not recalled"
            print(f"{t['lot']}  parent {t['parent'] or '-'}  {t['status']}, {recall}")
            for h in t["holders"]:
                print(f"    held by {h['did']} ({h['role']}): {h['quantity']}")
            for m in t["in_transit"]:
                print(f"    in transit {m['shipment']} to {m['receiver']}: {m['quantity']}")
            if t["dispensed"]:
                print(f"    dispensed: {t['dispensed']}")
    return 0


def _print_event(entry: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(entry), flush=True)
        return
    event = dict(entry["event"])
    kind = event.pop("type", "?")
    print(f"#{entry['id']} (log {entry['index']}) {kind}: {json.dumps(event)}", flush=True)


def _feed(args: argparse.Namespace) -> int:
    """Print the feed's events after --after; with --follow, then the stream."""
    got = signed_in_get(args, f"/v1/feed?after={args.after}&limit=1000")
    if isinstance(got, int):
        return got
    status, answer = got
    if status != 200:
        return refused(status, answer)
    for entry in answer["events"]:
        _print_event(entry, args.json)
    if not args.follow:
        return 0
    try:
        return asyncio.run(_follow(args, int(answer["next"])))
    except KeyboardInterrupt:
        return 0
    except (aiohttp.ClientError, ValueError, FetchError) as e:
        print(f"error: {args.cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


async def _follow(args: argparse.Namespace, after: int) -> int:
    """Print the events the stream brings after `after`. When the ledger ends the stream
    (the sign-in expired, the server restarts), sign in again and resume after the last
    event printed; stop when sign-in or the stream is refused (exit 1)."""
    secret = read_secret(args.key, "--key")
    assert secret is not None  # read once already
    url = args.cloud.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        while True:
            token, why = await sign_in(session, url, secret)
            if not token:
                print(f"error: sign-in refused: {why}", file=sys.stderr)
                return 1
            headers = {"Authorization": f"Bearer {token}", sse.LAST_EVENT_ID: str(after)}
            async with session.get(f"{url}/v1/feed/stream", headers=headers) as resp:
                if resp.status != 200:
                    answer = jsonbound.loads(await resp.read(), max_bytes=MAX_ANSWER, what="answer")
                    return refused(resp.status, answer if isinstance(answer, dict) else {})
                decoder = sse.Decoder()
                async for chunk in resp.content.iter_any():
                    for message in decoder.feed(chunk):
                        entry = json.loads(message.data)
                        _print_event(entry, args.json)
                        after = int(entry["id"])
            await asyncio.sleep(RECONNECT_S)


# -- lots history: a lot's legs and cold chain (GET /v1/lots/{gtin}/{lot}/history) ---------

_HISTORY = f"pharmasync lots history --gtin {GTIN} --lot L1 --key wholesaler.key --cloud {CLOUD}"


def _register_history(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser(
        "history",
        help="a lot's quality status, legs and cold chain (min/max/mean, MKT, excursions, gaps)",
        description="Read a lot's history from the ledger's aggregates. With --key, sign in "
        "as that participant: the read matrix's quality-status cell decides what you see "
        "(docs/contracts.md §5); without it, the public sees the quality status alone.",
        epilog=examples(_HISTORY),
    )
    _lot(history)
    history.add_argument("--key", type=Path, help="your secret key file, to sign in")
    history.add_argument("--cloud", default=CLOUD, help="the ledger's URL (default: %(default)s)")
    history.add_argument("--json", action="store_true", help="print the answer as JSON")
    history.set_defaults(handler=_history)


def _history(args: argparse.Namespace) -> int:
    """Print a lot's history, signed in with --key if given (exit 1 if the ledger refuses
    or cannot be reached; 2 for an unusable key file)."""
    got = read_as(args, f"/v1/lots/{args.gtin}/{args.lot}/history")
    if isinstance(got, int):
        return got
    status, answer = got
    if status != 200:
        return refused(status, answer)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print_record(_history_lines(answer), False)
    return 0


def _figures(stats: dict[str, Any]) -> str:
    """One line of a leg's or the lot's figures."""

    def c(name: str) -> str:
        value = stats.get(name)
        return "-" if value is None else f"{value:.2f}"

    return (
        f"{stats['count']} readings, min {c('min_c')} max {c('max_c')} mean {c('mean_c')} "
        f"MKT {c('mkt_c')} °C, humidity min {c('min_rh')} max {c('max_rh')} "
        f"mean {c('mean_rh')} %, {stats['time_out_of_range_s']} s out of range, "
        f"{stats['calibration_flagged']} past calibration"
    )


def _history_lines(answer: dict[str, Any]) -> dict[str, object]:
    """The history as `name: value` lines: status, then the cold chain overall and per leg."""
    quality = answer["quality"]
    lines: dict[str, object] = {"gtin": answer["gtin"], "lot": answer["lot"]}
    lines["status"] = f"{quality['status']} ({quality.get('source')}: {quality.get('reason')})"
    chain = answer.get("coldchain")
    if "coldchain" not in answer:
        lines["cold chain"] = "not shown (sign in with --key as a participant who may read it)"
        return lines
    if chain is None:
        lines["cold chain"] = "no box was ever attached to this lot"
        return lines
    lines["overall"] = _figures(chain["overall"])
    lines["excursions"] = len(chain["excursions"])
    lines["gaps"] = len(chain["gaps"])
    for leg in chain["legs"]:
        end = "open" if leg["end_s"] is None else leg["end_s"]
        lines[leg["leg"]] = f"{leg['start_s']}..{end}: {_figures(leg)}"
        for e in leg["excursions"]:
            lines[f"{leg['leg']} {e['kind']}"] = (
                f"from {e['start_s']}, raised {e['raised_s']}, worst {e['worst_cc']} centi-°C"
            )
    return lines
