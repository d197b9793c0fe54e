"""`pharmasync packs serialize|verify|decommission|undo`: the manufacturer registers a lot's
pack serials; the pharmacy verifies a pack at the counter (POST /v1/packs/verify, signed in
with its key file), decommissions it on dispense and may undo that within 10 days
(docs/contracts.md §6). A decommission the ledger refuses because the pack is already
decommissioned or unknown is a suspect counterfeit: the command then files the pharmacy's
signed suspect report, which alerts the manufacturer and the regulator.
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

from cloud.audit.log_client import FetchError
from cloud.audit.replay import sign_in
from cloud.cli_client import CLOUD, common_options, post_tx, refused, send
from cloud.contracts import digital_link, gs1, pack_facts, packs
from cloud.contracts.pack_index import MAX_PER_REGISTRATION
from cloud.lots_cli import GTIN
from device.cliutil import examples, positive_int, print_record, read_secret
from gateway import jsonbound

_SERIALIZE = (
    f"pharmasync packs serialize --gtin {GTIN} --lot L1 --count 100 --prefix PK "
    f"--key maker.key --cloud {CLOUD}"
)
_SERIALIZE_FILE = (
    f"pharmasync packs serialize --gtin {GTIN} --lot L1 --serials serials.txt "
    f"--key maker.key --cloud {CLOUD}"
)
_VERIFY = (
    f"pharmasync packs verify --gtin {GTIN} --serial PK0000007 --lot L1 --expiry 271231 "
    f"--key maker.key --cloud {CLOUD}"
)
_VERIFY_SCAN = (
    f"pharmasync packs verify --scan '(01){GTIN}(17)271231(10)L1(21)PK0000007' "
    f"--key maker.key --cloud {CLOUD}"
)
_VERIFY_LINK = (
    f"pharmasync packs verify --scan 'https://id.gs1.org/01/{GTIN}/10/L1/21/PK0000008?17=271231' "
    f"--key maker.key --cloud {CLOUD}"
)
_DECOMMISSION_SCAN = (
    f"pharmasync packs decommission --scan '(01){GTIN}(17)271231(10)L1(21)PK0000009' "
    f"--place 'Apotheke am Markt, Berlin' --key pharmacy.key --cloud {CLOUD}"
)
_DECOMMISSION = (
    f"pharmasync packs decommission --gtin {GTIN} --serial PK0000007 --place 'Apotheke am "
    f"Markt, Berlin' --key pharmacy.key --cloud {CLOUD}"
)
_UNDO = f"pharmasync packs undo --gtin {GTIN} --serial PK0000007 --key pharmacy.key --cloud {CLOUD}"
MAX_ANSWER = 64 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `packs` command group to the top-level parser."""
    group = subparsers.add_parser(
        "packs",
        help="serialized packs: register serials, verify and decommission at the counter",
        epilog=examples(_SERIALIZE, _VERIFY, _DECOMMISSION),
    )
    commands = group.add_subparsers(dest="packs_command", metavar="COMMAND", required=True)
    serialize = commands.add_parser(
        "serialize",
        help="register the serials of a lot's packs (the lot's manufacturer)",
        description="Sign lots/serialize transactions of up to 100,000 serials each (GS1 AI "
        "21: up to 20 characters of set 82, unique per GTIN) and send them.",
        epilog=examples(_SERIALIZE, _SERIALIZE_FILE),
    )
    _pack(serialize, serial=False)
    source = serialize.add_mutually_exclusive_group(required=True)
    source.add_argument("--serials", type=Path, metavar="FILE", help="one serial a line")
    source.add_argument("--count", type=positive_int, help="generate this many serials")
    serialize.add_argument("--prefix", default="PK", help="generated serials' prefix: PK")
    serialize.add_argument("--start", type=int, default=0, help="first generated number: 0")
    serialize.add_argument(
        "--width", type=int, default=7, help="generated numbers' zero-padded width: 7"
    )
    common_options(serialize, "the manufacturer's secret key file")
    serialize.set_defaults(handler=_serialize)

    verify = commands.add_parser(
        "verify",
        help="the counter's check of a scanned pack (signed in)",
        description="Ask the ledger for its verdict on a pack: authentic and dispensable, or "
        "unknown / mismatch (suspect), decommissioned, recalled, rejected, quarantined, "
        "expired. Exits 0 whenever the ledger answered; the verdict is printed.",
        epilog=examples(_VERIFY, _VERIFY_SCAN, _VERIFY_LINK),
    )
    _pack(verify, scan=True)
    common_options(verify, "your secret key file (you sign in with it)")
    verify.set_defaults(handler=_verify)

    decommission = commands.add_parser(
        "decommission",
        help="decommission a pack (a pharmacy holding its lot); a refused one is reported",
        description="Sign a lots/decommission. If the ledger refuses it because the pack is "
        "already decommissioned or not registered, file a signed suspect report (with "
        "--place and the label's --lot/--expiry) that alerts the manufacturer and the "
        "regulator, and exit 1. --scan takes the pack's fields from what the scanner read.",
        epilog=examples(_DECOMMISSION, _DECOMMISSION_SCAN),
    )
    _pack(decommission, scan=True)
    decommission.add_argument(
        "--status", choices=packs.DECOMMISSIONED, default="dispensed", help="default: dispensed"
    )
    decommission.add_argument("--place", required=True, help="where the pack was scanned")
    common_options(decommission, "the pharmacy's secret key file")
    decommission.set_defaults(handler=_decommission)

    undo = commands.add_parser(
        "undo",
        help="undo your decommission of a pack within 10 days (EU 2016/161 Art. 13)",
        epilog=examples(_UNDO),
    )
    _pack(undo, label=False)
    common_options(undo, "the pharmacy's secret key file")
    undo.set_defaults(handler=_undo)


_SCAN_HELP = (
    "what the scanner read instead of --gtin/--serial/--lot/--expiry: a GS1 element string "
    "(GS separators, optional ]d2 symbology identifier), its human-readable form "
    "(01)...(21)..., or a GS1 Digital Link URI"
)


def _pack(
    parser: argparse.ArgumentParser, serial: bool = True, label: bool = True, scan: bool = False
) -> None:
    parser.add_argument("--gtin", required=not scan, help="GTIN-14 (or -8, -12, -13)")
    if scan:
        parser.add_argument("--scan", metavar="TEXT", help=_SCAN_HELP)
    if serial:
        parser.add_argument("--serial", required=not scan, help="the serial (GS1 AI 21)")
        if label:
            parser.add_argument("--lot", help="the lot on the label (GS1 AI 10)")
            parser.add_argument("--expiry", help="the expiry on the label, YYMMDD (GS1 AI 17)")
    else:
        parser.add_argument("--lot", required=True, help="lot number (GS1 AI 10)")


def serial_list(args: argparse.Namespace) -> list[str]:
    """The serials to register: the file's non-empty lines, or --count generated ones
    (prefix + the number, zero-padded to --width digits: PK0000007). Raises ValueError for
    a serial that is no AI 21 value or a file that cannot be read."""
    if args.serials is not None:
        try:
            lines = args.serials.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--serials: {e}") from None
        serials = [line.strip() for line in lines if line.strip()]
    else:
        width = max(args.width, len(str(args.start + args.count - 1)))
        serials = [
            f"{args.prefix}{n:0{width}d}" for n in range(args.start, args.start + args.count)
        ]
    for serial in serials:
        gs1.serial(serial)
    return serials


def _serialize(args: argparse.Namespace) -> int:
    try:
        serials = serial_list(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not serials:
        print("error: --serials: the file holds no serial", file=sys.stderr)
        return 2
    for at in range(0, len(serials), MAX_PER_REGISTRATION):
        part = serials[at : at + MAX_PER_REGISTRATION]
        fields = {"gtin": args.gtin, "lot": args.lot, "serials": part}
        if code := send(args, "lots", "serialize", fields):
            return code
    return 0


def scanned(args: argparse.Namespace) -> str | None:
    """Fill args.gtin/serial/lot/expiry from args.scan (digital_link.scan_from_any, read on
    today's UTC date; fields also given must agree); return None, or the error to print
    (exit 2). Without --scan, --gtin and --serial are required."""
    if args.scan is None:
        if args.gtin is None or args.serial is None:
            return "give --scan, or --gtin and --serial"
        return None
    try:
        read = digital_link.scan_from_any(args.scan, gs1.today_of_ms(int(time.time() * 1000)))
    except gs1.Gs1Error as e:
        return f"--scan: {e}"
    if read.serial is None:
        return "--scan: AI 21: no serial in the scan (the counter checks packs)"
    for name, value in (
        ("gtin", read.gtin),
        ("serial", read.serial),
        ("lot", read.lot),
        ("expiry", read.expiry_yymmdd),
    ):
        given = getattr(args, name)
        if given is not None and value is not None and given != value:
            return f"--{name}: {given!r}, but the scan says {value!r}"
        setattr(args, name, given if value is None else value)
    return None


def _scan_body(args: argparse.Namespace) -> dict[str, Any]:
    body = {"gtin": args.gtin, "serial": args.serial, "lot": args.lot, "expiry": args.expiry}
    if args.scan is not None:
        body["scan"] = args.scan
    return {k: v for k, v in body.items() if v is not None}


def _verify(args: argparse.Namespace) -> int:
    """Sign in, ask for the verdict, print it. A --scan is sent as read: the server parses
    it (and refuses it naming the AI)."""
    if args.scan is None and (why := scanned(args)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if (secret := read_secret(args.key, "--key")) is None:
        return 2
    url = args.cloud.rstrip("/")

    async def ask() -> tuple[int, Any] | int:
        async with aiohttp.ClientSession() as session:
            token, why = await sign_in(session, url, secret)
            if not token:
                print(f"error: sign-in refused: {why}", file=sys.stderr)
                return 1
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(
                f"{url}/v1/packs/verify", json=_scan_body(args), headers=headers
            ) as resp:
                data = await resp.read()
                return resp.status, jsonbound.loads(data, max_bytes=MAX_ANSWER, what="answer")

    try:
        got = asyncio.run(ask())
    except (aiohttp.ClientError, ValueError, FetchError) as e:
        print(f"error: {args.cloud}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if isinstance(got, int):
        return got
    status, answer = got
    if status != 200 or not isinstance(answer, dict):
        return refused(status, answer if isinstance(answer, dict) else {})
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    line = {"pack": f"{answer['gtin']}/{answer['serial']}", "verdict": answer["verdict"]}
    line["dispensable"] = "yes" if answer["dispensable"] else "no"
    if answer["suspect"]:
        line["suspect"] = "yes: file a suspect report (packs decommission does)"
    if answer["pack"] is not None:
        line |= {k: answer["pack"][k] for k in ("lot", "expiry", "status", "quality")}
    if answer["decommission"] is not None:
        line |= {f"decommissioned {k}": v for k, v in answer["decommission"].items()}
    print_record(line, False)
    return 0


def _decommission(args: argparse.Namespace) -> int:
    """Send the decommission; if it is refused as a suspect, file the report."""
    if (why := scanned(args)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    fields = {"gtin": args.gtin, "serial": args.serial, "status": args.status}
    got = post_tx(args, "lots", "decommission", fields)
    if isinstance(got, int):
        return got
    status, answer = got
    if status == 201:
        print_record({"applied": "lots/decommission", **answer}, args.json)
        return 0
    reason = {"decommissioned": pack_facts.DECOMMISSIONED, "serial": pack_facts.UNKNOWN}
    if status != 409 or answer.get("reason") not in reason:
        return refused(status, answer)
    print(f"refused: {answer.get('reason')}: {answer.get('detail')}", file=sys.stderr)
    print("suspect: filing a suspect report", file=sys.stderr)
    report = {
        "gtin": args.gtin,
        "serial": args.serial,
        "reason": reason[str(answer["reason"])],
        "place": args.place,
    }
    report |= {k: v for k, v in (("lot", args.lot), ("expiry", args.expiry)) if v is not None}
    send(args, "lots", "suspect", report)
    return 1


def _undo(args: argparse.Namespace) -> int:
    return send(args, "lots", "undo", {"gtin": args.gtin, "serial": args.serial})
