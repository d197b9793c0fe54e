"""`pharmasync verify --public BUNDLE`: the offline check of a public check's proof bundle
(the resolver's `/01/...` answer, binary or JSON; cloud/audit/public_check.py does the
checks), against the identifiers the user scanned: `--link URI` (the pack's GS1 Digital
Link, as its QR code holds it) or `--gtin`, `--lot` [`--serial`] [`--expiry YYMMDD`].

Prints the facts "as of" the checkpoint's time (UTC), "as committed by the ledger", or one
✗ line naming the failed step. Exit status: 0 verified (whatever the verdict says), 2 usage,
3 a check failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from cloud.audit.follow import EXIT_MISBEHAVIOUR, EXIT_OK, EXIT_USAGE
from cloud.audit.public_check import PublicCheckError, PublicReport, Scanned, verify_public
from cloud.contracts import digital_link, gs1
from cloud.contracts.public_facts import utc
from cloud.contracts.public_proof import MAX_BUNDLE

PUBLIC_OPTIONS = ("--link", "--gtin", "--lot", "--serial", "--expiry")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the --public options to `verify`'s parser."""
    group = parser.add_argument_group("--public options (a pack's or lot's public check)")
    group.add_argument(
        "--public",
        metavar="FILE",
        help="a public check's proof bundle (from /01/{gtin}/10/{lot}[/21/{serial}]; '-': stdin)",
    )
    group.add_argument("--link", metavar="URI", help="the GS1 Digital Link scanned from the pack")
    group.add_argument("--gtin", metavar="GTIN", help="the GTIN scanned (instead of --link)")
    group.add_argument("--lot", metavar="LOT", help="the lot scanned (AI 10)")
    group.add_argument("--serial", metavar="SERIAL", help="the serial scanned (AI 21)")
    group.add_argument("--expiry", metavar="YYMMDD", help="the expiry printed on the pack (AI 17)")


def misused(args: argparse.Namespace) -> str | None:
    """Why the --public options are wrong, or None."""
    given = [o for o in PUBLIC_OPTIONS if getattr(args, o[2:]) is not None]
    if args.public is None:
        return f"{', '.join(given)}: only with --public" if given else None
    if not args.log_vkey:
        return "--public needs the log's key, --log-vkey VKEY|@FILE"
    if args.link is not None:
        others = [o for o in given if o != "--link"]
        return f"{', '.join(others)}: not with --link" if others else None
    if args.gtin is None or (args.lot is None and args.serial is None):
        return "--public needs --link URI, or --gtin and --lot and/or --serial"
    return None


def scanned_of(args: argparse.Namespace, today: datetime.date) -> Scanned:
    """What the user scanned, checked as GS1 defines it. Raises gs1.Gs1Error."""
    if args.link is not None:
        path = digital_link.parse_digital_link(args.link, today)
        if path.lot is None and path.serial is None:
            raise gs1.Gs1Error(gs1.AI_BATCH_LOT, args.link, "a link with its lot or serial")
        return Scanned(path.gtin, path.lot, path.serial, path.expiry)
    return Scanned(
        gs1.gtin14(args.gtin),
        None if args.lot is None else gs1.lot(args.lot),
        None if args.serial is None else gs1.serial(args.serial),
        None if args.expiry is None else gs1.expiry(args.expiry, today),
    )


def run(args: argparse.Namespace, read: Any) -> int:
    """`verify --public`; `read(name, limit)` reads the file (verify._read_bundle)."""
    today = datetime.datetime.now(datetime.UTC).date()
    try:
        scanned = scanned_of(args, today)
    except gs1.Gs1Error as e:
        print(f"error: scanned identifiers: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = read(args.public, 4 * MAX_BUNDLE)
    except OSError as e:
        print(f"error: cannot read {args.public}: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = verify_public(data, log_vkey=args.log_vkey, scanned=scanned)
    except PublicCheckError as e:
        if args.json:
            print(json.dumps({"verified": False, "step": e.step.value, "detail": e.detail}))
        else:
            print(f"✗ {e.step.value}: {e.detail}")
        print(f"verification FAILED at step '{e.step.value}'", file=sys.stderr)
        return EXIT_MISBEHAVIOUR
    except ValueError as e:  # a malformed --log-vkey
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report.to_json(), indent=2) if args.json else "\n".join(describe(report)))
    return EXIT_OK


def describe(report: PublicReport) -> list[str]:
    """The report as people read it: the verdict, the facts, and as of when."""
    facts = report.facts
    s = report.scanned
    what = f"GTIN {s.gtin}" + ("" if s.lot is None else f" lot {s.lot}")
    what += "" if s.serial is None else f" serial {s.serial}"
    lines = [
        f"✓ verified: {what}, every record proven to the log's key",
        f"  as of {utc(report.as_of)} (checkpoint of {report.size} entries of {report.origin},"
        f" the first including state root entry {report.index})",
        "  as committed by the ledger (no replaying witness has re-derived this root yet)",
        f"verdict: {facts['verdict']}",
    ]
    lines += [f"  - {reason}" for reason in facts["reasons"]]
    serial = facts.get("serial")
    if serial is not None and not serial["registered"]:
        lines.append("authentic: NO — no manufacturer registered this pack's serial")
    elif not facts["authentic"]:
        lines.append("authentic: NO — no such lot of this GTIN is registered (proven absent)")
    else:
        lines.append(f"authentic: yes, registered by {facts['manufacturer']}")
        expired = "expired" if facts["expired"] else "not expired"
        lines.append(f"expiry: {facts['expiry']} ({expired} as of that day)")
        scanned = facts.get("scanned_expiry")
        if scanned is not None:
            agrees = "agrees" if scanned["agrees"] else "DIFFERS"
            lines.append(f"pack's expiry: {scanned['yymmdd']} = {scanned['date']}: {agrees}")
        quality = facts["quality"]
        lines.append(
            f"quality: {quality['status']} ({quality['reason']})" if quality else "quality: none"
        )
        recall = facts["recall"]
        lines.append(
            "recall: none"
            if recall is None
            else f"recall: class {recall['class']}: {recall['reason']}"
        )
        cold = facts["coldchain"]
        lines.append(
            "cold chain: within profile"
            if cold["within_profile"]
            else f"cold chain: {cold['verdict']}"
        )
    lines += _pack_lines(facts.get("serial"))
    return lines


def _pack_lines(serial: dict[str, Any] | None) -> list[str]:
    """A pack's lines (public_pack.facts' "serial"): registered, status, the lot it is in."""
    if serial is None:
        return []
    if not serial["registered"]:
        return [
            f"pack {serial['value']}: NOT registered by the manufacturer — suspect"
            " (the bundle proves no registration of it)"
        ]
    status = "in the supply chain (active)"
    if not serial["in_supply_chain"]:
        status = f"decommissioned ({serial['status']})"
    lines = [
        f"pack {serial['value']}: registered in lot {serial['registered_lot']}"
        f" (registration {serial['registration']}, serial proven in its root); {status}"
    ]
    if serial["moved"]:
        lines.append(f"  now in lot {serial['lot']} (a split moved it): the facts above are its")
    return lines
