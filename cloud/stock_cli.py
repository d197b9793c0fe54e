"""`pharmasync stock`: sign in with a key file and print each GTIN's stock as the access
matrix lets you see it (GET /v1/stock, /v1/stock/{gtin}); and `pharmasync stock minimum`,
the regulator's minimum per GTIN (a lots/stock-minimum transaction, POST /v1/tx), below
which the regulator's feed gets a shortage alert (docs/contracts.md §5, "Stock and shortage
(as built)")."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cloud.cli_client import CLOUD, refused, send, signed_in_get
from cloud.contracts import gs1, lots_stock
from cloud.lots_cli import GTIN
from device.cliutil import examples

_READ = f"pharmasync stock --key regulator.key --cloud {CLOUD}"
_READ_ONE = f"pharmasync stock {GTIN} --key maker.key --cloud {CLOUD}"
_MINIMUM = f"pharmasync stock minimum {GTIN} 50 --regulator-key regulator.key --cloud {CLOUD}"
_CLEAR = f"pharmasync stock minimum {GTIN} 0 --regulator-key regulator.key --cloud {CLOUD}"
USAGE = "pharmasync stock [GTIN] --key FILE | stock minimum GTIN N --regulator-key FILE"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `stock` command to the top-level parser."""
    stock = subparsers.add_parser(
        "stock",
        usage=USAGE,
        help="stock per GTIN: on hand per role, in transit, days of cover; set a minimum",
        description="Without `minimum`: sign in with --key and print the stock of GTIN (or "
        "of every GTIN you may see): the regulator, a manufacturer, a distributor and the "
        "operator team see units on hand per holder role and in transit, by class "
        "(released, quarantined, rejected, recalled), the stock (released, not recalled), "
        "units dispensed in the last 30 days and days of cover, no participant named; a "
        "trading participant sees its own holdings. With `minimum GTIN N`: the regulator "
        "sets the GTIN's minimum stock (0 clears it); when stock falls below it, the "
        "regulator's feed (`pharmasync feed`) gets a shortage alert.",
        epilog=examples(_READ, _READ_ONE, _MINIMUM, _CLEAR),
    )
    stock.add_argument("words", nargs="*", metavar="[GTIN | minimum GTIN N]")
    stock.add_argument("--key", type=Path, help="your secret key file (to sign in and read)")
    stock.add_argument(
        "--regulator-key", type=Path, help="the regulator's secret key file (for `minimum`)"
    )
    stock.add_argument("--cloud", default=CLOUD, help="the ledger's URL (default: %(default)s)")
    stock.add_argument("--json", action="store_true", help="print JSON")
    stock.set_defaults(handler=_stock)


def _gtin(text: str) -> str | None:
    try:
        return gs1.gtin14(text)
    except ValueError as e:
        print(f"error: GTIN {text[:40]!r}: {e}", file=sys.stderr)
        return None


def _stock(args: argparse.Namespace) -> int:
    """Dispatch `stock [GTIN]` and `stock minimum GTIN N`; 2 for a malformed command line."""
    words = list(args.words)
    if words[:1] == ["minimum"]:
        return _minimum(args, words[1:])
    if len(words) > 1:
        print(f"error: got {' '.join(words)!r}; usage: {USAGE}", file=sys.stderr)
        return 2
    if args.key is None:
        print("error: give --key (your secret key file) to sign in", file=sys.stderr)
        return 2
    if words and (gtin := _gtin(words[0])) is None:
        return 2
    path = f"/v1/stock/{gtin}" if words else "/v1/stock?limit=1000"
    got = signed_in_get(args, path)
    if isinstance(got, int):
        return got
    if got[0] != 200:
        return refused(*got)
    if args.json:
        print(json.dumps(got[1], indent=2))
    else:
        for one in got[1].get("gtins", [got[1]]):  # a page, or one GTIN
            _print(one)
    return 0


def _minimum(args: argparse.Namespace, words: list[str]) -> int:
    """Sign and send lots/stock-minimum with --regulator-key."""
    if len(words) != 2 or not words[1].isdigit():
        print(f"error: want `minimum GTIN N` (N >= 0 units); usage: {USAGE}", file=sys.stderr)
        return 2
    if args.regulator_key is None:
        print("error: give --regulator-key (the regulator signs a minimum)", file=sys.stderr)
        return 2
    if (gtin := _gtin(words[0])) is None:
        return 2
    args.key = args.regulator_key
    return send(args, "lots", lots_stock.TX_TYPE, {"gtin": gtin, "minimum": int(words[1])})


def _classes(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "0"


def _cover(part: dict[str, Any]) -> str:
    days = part["days_of_cover"]
    cover = "no dispenses" if days is None else f"{days} days of cover"
    return f"stock {part['stock']}, dispensed {part['dispensed_30d']} in 30 days, {cover}"


def _print(one: dict[str, Any]) -> None:
    """One GTIN as lines: its figures per role, your own, the minimum, what is withheld."""
    line = one["gtin"]
    if "shortage" in one:
        s = one["shortage"]
        if s["minimum"] is not None:
            line += f"  minimum {s['minimum']}" + (" (BELOW)" if s["below"] else "")
    print(line)
    if "figures" in one:
        f = one["figures"]
        print(f"  all holders: {_cover(f)}")
        for role, counts in f["on_hand"].items():
            print(f"    {role:<13} {_classes(counts)}")
        print(f"    {'in transit':<13} {_classes(f['in_transit'])}")
    if "own" in one:
        o = one["own"]
        print(f"  yours: {_cover(o)}")
        print(f"    {'on hand':<13} {_classes(o['on_hand'])}")
        print(f"    {'to you':<13} {_classes(o['in_transit_to_you'])}")
        print(f"    {'from you':<13} {_classes(o['in_transit_from_you'])}")
    for what, cell in one["withheld"].items():
        print(f"  {what} withheld: {cell}")
