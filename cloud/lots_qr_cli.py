"""`pharmasync lots qr`: a lot's or a pack's GS1 Digital Link as a QR Code, and the pack's
GS1 DataMatrix (its element string, as EU FMD packs carry it). Offline: it asks no ledger.

The Digital Link is built on --base-url (default GS1's resolver, id.gs1.org; a PharmaSync
ledger that answers Digital Link paths is named with its own URL). Six-digit expiry dates
are read on today's UTC date (GS1 General Specifications §7.12's century window).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from cloud import gs1_labels
from cloud.contracts import digital_link, gs1_element
from cloud.contracts.gs1 import Gs1Error
from device.cliutil import examples, print_record

_LOT_QR = "pharmasync lots qr 09506000134352 ABC123"
_PACK_QR = (
    "pharmasync lots qr 09506000134352 ABC123 --serial XYZ --expiry 270300 "
    "--base-url https://ledger.example --out pack-qr.svg --datamatrix pack-dm.png"
)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `qr` to the `lots` command group."""
    qr = commands.add_parser(
        "qr",
        help="a lot's or a pack's GS1 Digital Link as a QR code, and the pack's GS1 DataMatrix",
        description="Print the GS1 Digital Link URI of a lot (GTIN and LOT) or of a pack "
        "(with --serial, and ?17= with --expiry) and its QR code: in the terminal, or as a "
        "PNG/SVG file with --out. With --datamatrix, also write the GS1 DataMatrix that "
        "carries the element string (FNC1, 01, 17, 10, FNC1, 21) as EU FMD packs print it.",
        epilog=examples(_LOT_QR, _PACK_QR),
    )
    qr.add_argument("gtin", metavar="GTIN", help="GTIN-8, -12, -13 or -14 (written as 14)")
    qr.add_argument("lot", metavar="LOT", help="lot number (GS1 AI 10)")
    qr.add_argument("--serial", help="the pack's serial number (GS1 AI 21)")
    qr.add_argument("--expiry", metavar="YYMMDD", help="expiry (GS1 AI 17; day 00 = month end)")
    qr.add_argument(
        "--base-url",
        default=digital_link.GS1_RESOLVER,
        metavar="URL",
        help="the resolver the link names (default: %(default)s)",
    )
    qr.add_argument(
        "--out", type=Path, metavar="FILE.png|FILE.svg", help="write the QR code to this file"
    )
    qr.add_argument(
        "--datamatrix",
        type=Path,
        metavar="FILE.png|FILE.svg",
        help="write the GS1 DataMatrix (the element string) to this file",
    )
    qr.add_argument("--json", action="store_true", help="print JSON (no terminal QR code)")
    qr.set_defaults(handler=_qr)


def _qr(args: argparse.Namespace) -> int:
    """Print the link (and the QR code unless written to a file); exit 2 for a value GS1
    refuses, 1 for a code that cannot be written."""
    today = datetime.datetime.now(datetime.UTC).date()
    try:
        uri = digital_link.build_digital_link(
            args.gtin,
            today,
            lot=args.lot,
            serial=args.serial,
            expiry=args.expiry,
            base=args.base_url,
        )
        element = gs1_element.build_element_string(
            args.gtin, today, expiry=args.expiry, lot=args.lot, serial=args.serial
        )
    except Gs1Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    record: dict[str, object] = {"digital_link": uri, "element_string": element.hri}
    try:
        for path in (args.out, args.datamatrix):
            if path is not None:
                gs1_labels.check_format(path)  # both, before anything is written
        if args.out is not None:
            gs1_labels.write_qr(uri, args.out)
            record["qr"] = str(args.out)
        if args.datamatrix is not None:
            gs1_labels.write_datamatrix(element, args.datamatrix)
            record["datamatrix"] = str(args.datamatrix)
    except (gs1_labels.LabelError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print_record(record, False)
    if args.out is None:
        print(gs1_labels.qr_terminal(uri), end="")
    return 0
