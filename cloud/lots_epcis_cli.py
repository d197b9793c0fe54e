"""`pharmasync lots epcis`: a lot's and its descendants' history as a GS1 EPCIS 2.0
document (GET /v1/lots/{gtin}/{lot}/epcis), as the signed-in participant (or the public)
may see it, printed or written to a file to hand to a trading partner."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from cloud.cli_client import CLOUD, read_as, refused
from cloud.contracts import lots_fields
from device.cliutil import examples

_GTIN = "09506000134352"  # GS1's example GTIN-14
EXAMPLES = (
    f"pharmasync lots epcis {_GTIN} L1 --cloud {CLOUD}",
    f"pharmasync lots epcis {_GTIN} L1 --key wholesaler.key --out L1.epcis.jsonld --cloud {CLOUD}",
    f"pharmasync lots epcis {_GTIN} L1 --epc-format urn --cloud {CLOUD}",
)
# --epc-format: the EPCIS 2.0 GS1-EPC-Format request header's values
EPC_FORMATS = {
    "digital-link": "Always_GS1_Digital_Link",
    "urn": "Always_EPC_URN",
    "any": "No_Preference",
}


def _checked(check: Callable[[object], str], what: str) -> Callable[[str], str]:
    """argparse type: `check`'s value, or its got/want message."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{what}: {e}") from None

    return parse


def register(commands: argparse._SubParsersAction) -> None:
    """Add `epcis` to the `pharmasync lots` commands."""
    epcis = commands.add_parser(
        "epcis",
        help="a lot's history as a GS1 EPCIS 2.0 document (JSON-LD) for trading partners",
        description="Export the lot and every lot split from it as an EPCISDocument: "
        "commissioning, shipping, receiving, splits, dispensing, quarantines, recalls and, per "
        "leg, the cold chain's min/max/mean temperature and relative humidity and alarms; "
        "serialized packs, and the packing of a shipment's named packs (AggregationEvents). "
        "With --key, sign in as "
        "that participant: the read matrix decides which events and fields you get "
        "(docs/contracts.md §4 'EPCIS'); without it, the public's. The ledger also answers "
        "EPCIS queries at GET /epcis/events and takes partners' signed documents at POST "
        "/epcis/capture.",
        epilog=examples(*EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    epcis.add_argument("gtin", type=_checked(lots_fields.gtin14, "GTIN"), help="GTIN-14")
    epcis.add_argument("lot", type=_checked(lots_fields.lot_number, "lot"), help="lot (AI 10)")
    epcis.add_argument("--key", type=Path, help="your secret key file, to sign in")
    epcis.add_argument("--out", type=Path, help="write the document here (default: stdout)")
    epcis.add_argument(
        "--epc-format",
        choices=EPC_FORMATS,
        default="digital-link",
        help="how lots and packs are named: GS1 Digital Link URIs, or EPC URNs where the "
        "manufacturer declared its company prefix (`lots gs1-prefix`; others stay Digital "
        "Links) (default: %(default)s)",
    )
    epcis.add_argument("--cloud", default=CLOUD, help="the ledger's URL (default: %(default)s)")
    epcis.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    """Fetch the document; print it or write it to --out (exit 1 if the ledger refuses or
    cannot be reached, 2 for an unusable key file or output path)."""
    path = f"/v1/lots/{args.gtin}/{quote(args.lot, safe='')}/epcis"
    got = read_as(args, path, {"GS1-EPC-Format": EPC_FORMATS[args.epc_format]})
    if isinstance(got, int):
        return got
    status, document = got
    if status != 200:
        return refused(status, document)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"error: --out {args.out}: {e}", file=sys.stderr)
        return 2
    count = len(document["epcisBody"]["eventList"])
    print(f"wrote {count} EPCIS events of {args.gtin}/{args.lot} to {args.out}")
    return 0
