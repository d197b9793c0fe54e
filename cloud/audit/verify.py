"""`pharmasync verify`: the auditor's check of a reading's proof bundle, or of the whole log.

    pharmasync verify BUNDLE.json [--log-vkey VKEY|@FILE] [--device KEY] [--witness VKEY ...]
                      [--min-cosignatures N] [--json]
    pharmasync verify --cloud URL [--log-vkey VKEY|@FILE] [--state FILE] [--once]
                      [--interval S] [--readings]
    pharmasync verify --receipt FILE --log-vkey VKEY|@FILE --witness VKEY [...]
                      [--min-cosignatures N] [--json]
    pharmasync verify --public FILE --log-vkey VKEY|@FILE (--link URI | --gtin G --lot L
                      [--serial S] [--expiry YYMMDD]) [--json]

The checks live in `cloud.audit.bundle` (one bundle, offline), `cloud.audit.receipt` (a
cosigned receipt, offline), `cloud.audit.public_check` (a public check's bundle, offline;
its options and output in `cloud.audit.public_verify`) and `cloud.audit.follow` (the log
follower); this module reads arguments, prints, and maps outcomes to exit statuses: 0
verified, 1 the log could not be read, 2 usage, 3 a check failed or the log misbehaved.
`register` adds the command to the `pharmasync` parser; `main` runs it on its own
(`python -m cloud.audit.verify ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from cloud.audit import public_verify, replay
from cloud.audit.bundle import (
    BOX_KEY_SIZE,
    MAX_BUNDLE_BYTES,
    BundleError,
    BundleReport,
    Step,
    verify_bundle,
)
from cloud.audit.follow import (
    EXIT_MISBEHAVIOUR,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_USAGE,
    Follower,
    Misbehaviour,
    follow,
)
from cloud.audit.follow_state import default_state_path
from cloud.audit.log_client import printable
from cloud.audit.receipt import (
    MAX_RECEIPT_BYTES,
    describe,
    failure_json,
    failure_lines,
    report_json,
    verify_receipt,
)
from device.cliutil import hex_bytes, read_secret
from device.topics import ID_BYTES
from gateway import jsonbound
from gateway.cosigned_receipt import ReceiptError

__all__ = [
    "BundleError",
    "BundleReport",
    "Follower",
    "Misbehaviour",
    "Step",
    "follow",
    "main",
    "register",
    "verify_bundle",
]

DEFAULT_INTERVAL_S: Final = 30.0

DESCRIPTION: Final = """\
Check a reading without trusting the operator.

With BUNDLE.json (a proof bundle from GET /v1/readings/{box}/{seq}/proof, or '-' for
stdin), check it offline, link by link: the reading's box signature, the batch header's
gateway signature, the reading's inclusion in the batch, the batch entry's inclusion in
the log, and the log's signed checkpoint. Without --log-vkey the bundle's own log key is
used and reported as UNPINNED: the bundle then only proves it is self-consistent.

With --cloud URL, follow the ledger's log: verify each new signed checkpoint, its
consistency with the last one, and every entry since (gateway signatures and chains,
owners' signed changes, gateway events in order; contract transactions and state roots by
their form only, since their bodies are private; with --readings every reading too),
recomputing the log's root from the entries.
Rollbacks, split views, forks and bad entries raise a loud alarm on stderr.

With --replay --cloud URL, replay the contracts: with --key FILE (a key holding a replay
grant, a 0x06 grant-add the regulator signed) sign in, fetch the transaction bodies, check
each 0x03 commitment and signature, rebuild the state with the ledger's engine, follow
every batch's readings of boxes on lots into the lots' cold chains (one request per batch)
and check every committed 0x04 root, reporting the first entry where they part; without
--key (or without a grant) check the public entries only, and say so.

With --receipt FILE (a cosigned receipt from GET /v1/batches/{gateway}/{seq}/receipt, or
one a gateway kept), check offline that the batch is in the log under a checkpoint the
given witnesses cosigned, and that the original receipt's checkpoint is a prefix of it.

With --public FILE (a pack's or lot's public check from its GS1 Digital Link,
/01/{gtin}/10/{lot}, saved as JSON or as its binary proof bundle), check offline that each
public record (lot, quality, recall, cold chain) is in the state root of a 0x04 log entry,
that entry in the log, under the log-signed checkpoint of the size that first includes it;
the record keys are recomputed from what you scanned (--link, or --gtin/--lot/--serial), never
taken from the bundle. Prints the facts as of that checkpoint's time, as committed by the
ledger.

exit status: 0 verified, 1 the log could not be read (after retries), 2 usage error,
3 a check failed or the log misbehaved."""

EXAMPLES: Final = """\
examples:
  pharmasync verify proof.json --log-vkey @ledger.vkey
  pharmasync verify proof.json --log-vkey @ledger.vkey --device 9849e78b1c2d3e4f --json
  pharmasync verify proof.json --log-vkey @ledger.vkey --witness @witness.vkey --min-cosignatures 1
  pharmasync verify --cloud http://127.0.0.1:8480 --log-vkey @ledger.vkey --once
  pharmasync verify --cloud https://ledger.example --log-vkey @ledger.vkey --readings --interval 60
  pharmasync verify --receipt receipt.json --log-vkey @ledger.vkey --witness @witness.vkey
  pharmasync verify --replay --cloud http://127.0.0.1:8480
  pharmasync verify --public check.bin --log-vkey @ledger.vkey --link 'https://ledger.example/01/09506000134352/10/L1?17=271200'
  pharmasync verify --public check.json --log-vkey @ledger.vkey --gtin 9506000134352 --lot L1
  pharmasync verify --public check-pack.bin --log-vkey @ledger.vkey --link 'https://ledger.example/01/09506000134352/10/L1/21/PK0000007?17=271200'
  pharmasync verify --public check-pack.bin --log-vkey @ledger.vkey --gtin 9506000134352 --serial S7

  (save the log's key once: curl -s http://127.0.0.1:8480/v1/log/vkey -o ledger.vkey;
   a proof: curl -s http://127.0.0.1:8480/v1/readings/BOX_KEY/SEQ/proof -o proof.json;
   a public check: curl -s -H 'Accept: application/vnd.pharmasync.public-proof'
      http://127.0.0.1:8480/01/09506000134352/10/L1 -o check.bin)"""


MAX_KEY_FILE = 4096  # a key string is ~60-100 bytes; room for comments around it


def key_string(value: str) -> str:
    """argparse type: a key string, or the first word of the file `@PATH` (at most
    MAX_KEY_FILE bytes)."""
    if not value.startswith("@"):
        return value.strip()
    try:  # bounded: @/dev/zero must not be read until memory runs out
        data = _read_bundle(value[1:], MAX_KEY_FILE)
        lines = data.decode("utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {e}") from None
    if len(data) > MAX_KEY_FILE:
        raise argparse.ArgumentTypeError(
            f"{value[1:]} is over {MAX_KEY_FILE} bytes, want a key file"
        )
    if not lines:
        raise argparse.ArgumentTypeError(f"{value[1:]} is empty, want a key string")
    return lines[0]


def box_key(value: str) -> bytes:
    """argparse type: a box's 32-byte x-only public key in hex, or its 8-byte id (the first
    16 hex digits of the key, as the demo, the gateway and the box's topics show it)."""
    want = "a box's id (16 hex digits) or its key (64 hex digits)"
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {value!r}, want {want}") from None
    if len(key) not in (ID_BYTES, BOX_KEY_SIZE):
        raise argparse.ArgumentTypeError(f"got {len(key) * 2} hex digits, want {want}")
    return key


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"got {number}, want >= 0")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"got {value}, want seconds > 0")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `verify` arguments and handler to `parser`."""
    parser.add_argument(
        "bundle", nargs="?", metavar="BUNDLE.json", help="proof bundle to check, '-' for stdin"
    )
    parser.add_argument("--cloud", metavar="URL", help="follow the log of the ledger at URL")
    parser.add_argument(
        "--receipt", metavar="FILE", help="check a cosigned receipt ('-' for stdin)"
    )
    parser.add_argument(
        "--log-vkey",
        type=key_string,
        metavar="VKEY|@FILE",
        help="the log's verifier key (name+keyid+base64) to trust, or @file holding it",
    )
    bundle = parser.add_argument_group("bundle options")
    bundle.add_argument("--device", type=box_key, metavar="KEY", help="require this box key (hex)")
    bundle.add_argument(
        "--witness",
        type=key_string,
        action="append",
        default=[],
        metavar="VKEY|@FILE",
        help="a witness's cosignature key; repeat for several",
    )
    bundle.add_argument(
        "--min-cosignatures",
        type=_count,
        metavar="N",
        help="witnesses that must have cosigned (default: every --witness given)",
    )
    bundle.add_argument("--json", action="store_true", help="print a JSON report")
    cloud = parser.add_argument_group("--cloud options")
    cloud.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="state file (default: ~/.local/state/pharmasync/verify-<url hash>.json)",
    )
    cloud.add_argument("--once", action="store_true", help="poll once and exit (scripts, CI)")
    cloud.add_argument(
        "--interval",
        type=_seconds,
        metavar="S",
        help=f"seconds between polls (default {DEFAULT_INTERVAL_S:g})",
    )
    cloud.add_argument(
        "--readings", action="store_true", help="also download and check every batch's readings"
    )
    cloud.add_argument(
        "--owner",
        type=hex_bytes,
        action="append",
        metavar="KEY|@FILE",
        help="a first owner key, pinned: the log's owner bootstrap must name exactly these; "
        "repeatable (default: the bootstrap is not checked against pinned keys)",
    )
    replaying = parser.add_argument_group("--replay options")
    replaying.add_argument(
        "--replay",
        action="store_true",
        help="with --cloud: replay the contracts and check every state root",
    )
    replaying.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="secret key file of a replay grant holder (`cloud keygen`); without: public only",
    )
    public_verify.add_arguments(parser)
    parser.set_defaults(handler=run)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `verify` command to the top-level `pharmasync` parser."""
    parser = subparsers.add_parser(
        "verify",
        help="check a reading's proof bundle or a pack's public check, or follow the log",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)


def _given(args: argparse.Namespace, *options: str) -> list[str]:
    """Return those of `options` (e.g. "--min-cosignatures") given a value in `args`."""
    return [o for o in options if getattr(args, o.removeprefix("--").replace("-", "_"))]


def _misused(args: argparse.Namespace) -> str | None:
    """Return why the argument combination is wrong, or None."""
    public = public_verify.misused(args)
    if public is not None or args.public is not None:
        if public is None and (args.bundle, args.cloud, args.receipt) != (None, None, None):
            return "--public goes alone: not with BUNDLE.json, --cloud or --receipt"
        used = _given(args, "--device", "--witness", "--min-cosignatures", "--replay", "--key")
        used += _given(args, "--state", "--once", "--interval", "--readings", "--owner")
        return public or (f"{', '.join(used)}: not for --public" if used else None)
    if [args.bundle, args.cloud, args.receipt].count(None) != 2:
        return "give one of BUNDLE.json, --cloud URL or --receipt FILE"
    follow_options = ("--state", "--once", "--interval", "--readings", "--owner")
    if args.receipt is not None:
        used = _given(args, "--device", *follow_options)
        if used:
            return f"{', '.join(used)}: not for --receipt"
        if not args.log_vkey or not args.witness:
            return "--receipt needs the pinned --log-vkey and at least one --witness"
        return None
    if args.replay or args.key:
        if args.cloud is None or not args.replay:
            return "--replay and --key go with --cloud URL (and --key with --replay)"
        used = _given(args, *follow_options, "--log-vkey")
        return f"{', '.join(used)}: not for --replay" if used else None
    if args.cloud is not None:
        used = _given(args, "--device", "--witness", "--min-cosignatures", "--json")
        return f"{', '.join(used)}: only for a bundle" if used else None
    used = _given(args, *follow_options)
    return f"{', '.join(used)}: only with --cloud" if used else None


def run(args: argparse.Namespace) -> int:
    """Run `pharmasync verify` with parsed `args`; return the exit status."""
    problem = _misused(args)
    if problem:
        print(f"error: {problem} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    if args.public is not None:
        return public_verify.run(args, _read_bundle)
    if args.replay:
        secret = None if args.key is None else read_secret(args.key, "--key")
        if args.key is not None and secret is None:
            return EXIT_USAGE
        return asyncio.run(replay.run(args.cloud, secret))
    if args.cloud is not None:
        return asyncio.run(
            follow(
                args.cloud,
                args.state or default_state_path(args.cloud),
                log_vkey=args.log_vkey,
                readings=args.readings,
                owners=args.owner,
                once=args.once,
                interval_s=args.interval or DEFAULT_INTERVAL_S,
            )
        )
    if args.receipt is not None:
        return _verify_receipt_file(args)
    return _verify_file(args)


def _read_bundle(name: str, limit: int = MAX_BUNDLE_BYTES) -> bytes:
    """Return the bytes of bundle file `name` ('-': stdin), at most `limit` + 1 of them: a
    larger file is refused without being read whole. Raises OSError."""
    if name == "-":
        return sys.stdin.buffer.read(limit + 1)
    with Path(name).open("rb") as f:
        return f.read(limit + 1)


def _verify_receipt_file(args: argparse.Namespace) -> int:
    """`verify --receipt`: 0 verified, 1 the file is a server's error answer, 2 usage, 3 a
    check failed (one ✗ line naming the step)."""
    try:
        data = _read_bundle(args.receipt, MAX_RECEIPT_BYTES)
    except OSError as e:
        print(f"error: cannot read {args.receipt}: {e}", file=sys.stderr)
        return EXIT_USAGE
    minimum = len(args.witness) if args.min_cosignatures is None else args.min_cosignatures
    try:
        checked = verify_receipt(
            data, log_vkey=args.log_vkey, witnesses=args.witness, min_cosignatures=minimum
        )
    except ReceiptError as e:
        served = server_error(data) if e.step == "shape" else None
        if served is not None:  # e.g. `curl .../receipt > receipt.json` before it is cosigned
            print(
                f"error: {args.receipt} is the server's answer, not a receipt: {served}",
                file=sys.stderr,
            )
            return EXIT_NETWORK
        if args.json:
            print(json.dumps(failure_json(e), indent=2))
        else:
            print("\n".join(failure_lines(e)))
        print(f"verification FAILED at step '{e.step}'", file=sys.stderr)
        return EXIT_MISBEHAVIOUR
    except ValueError as e:  # a malformed key string given by the user
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report_json(checked), indent=2) if args.json else "\n".join(describe(checked)))
    return EXIT_OK


def _verify_file(args: argparse.Namespace) -> int:
    try:
        data = _read_bundle(args.bundle)
    except OSError as e:
        print(f"error: cannot read {args.bundle}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if len(data) > MAX_BUNDLE_BYTES:
        more = f"more than {MAX_BUNDLE_BYTES} bytes"
        _print_failure(BundleError(Step.SHAPE, more, f"at most {MAX_BUNDLE_BYTES}"), args.json)
        return EXIT_MISBEHAVIOUR
    minimum = len(args.witness) if args.min_cosignatures is None else args.min_cosignatures
    try:
        report = verify_bundle(
            data,
            log_vkey=args.log_vkey,
            device_key=args.device,
            witnesses=args.witness,
            min_cosignatures=minimum,
        )
    except BundleError as e:
        served = server_error(data) if e.step is Step.SHAPE else None
        if served is not None:  # e.g. `curl .../proof > bundle.json` of a reading not stored
            print(
                f"error: {args.bundle} is the server's answer, not a proof bundle: {served}",
                file=sys.stderr,
            )
            return EXIT_NETWORK
        _print_failure(e, args.json)
        return EXIT_MISBEHAVIOUR
    except ValueError as e:  # a malformed key string or count given by the user
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(describe_report(report)))
    return EXIT_OK


def server_error(data: bytes) -> str | None:
    """The message of an RFC 9457 problem document (what the ledger answers instead of a
    bundle: an unknown box or seq, a bad request) on one printable line, or None if `data`
    is not one."""
    try:
        doc = jsonbound.loads(data, max_bytes=MAX_BUNDLE_BYTES, what="answer")
    except jsonbound.JsonError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), int):
        return None
    detail = doc.get("detail") or doc.get("title") or "no detail"
    return f"HTTP {doc['status']}: {printable(str(detail))}"


def _step_line(mark: str, step: Step, detail: str) -> str:
    return f"{mark} {step.value:<21} {detail}"


def _print_failure(error: BundleError, as_json: bool) -> None:
    if as_json:
        failure = {
            "ok": False,
            "step": error.step.value,
            "subject": error.subject,
            "got": error.got,
            "want": error.want,
            "passed": [step.value for step, _ in error.passed],
        }
        print(json.dumps(failure, indent=2))
    else:
        for step, detail in error.passed:
            print(_step_line("✓", step, detail))
        print(_step_line("✗", error.step, str(error).removeprefix(f"{error.step.value}: ")))
    print(f"verification FAILED at step '{error.step.value}'", file=sys.stderr)


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_report(report: BundleReport) -> list[str]:
    """Return the human summary of a verified bundle: one ✓ line per check, the reading,
    where it sits, and the trust notes."""
    lines = [_step_line("✓", step, detail) for step, detail in report.steps]
    r = report.reading
    fields = [
        ("box key", r.box_key.hex()),
        ("seq", str(r.seq)),
        ("time", f"{r.time} ({_utc(r.time)})"),
        ("temperature", f"{r.temperature_c:.2f} °C"),
        ("humidity", f"{r.humidity_pct:.2f} %"),
        ("flags", ", ".join(r.flags) or "none"),
        ("gateway key", report.gateway_key.hex()),
        ("batch", f"seq {report.batch_seq}, reading {report.batch_index} of {report.batch_size}"),
        ("log", f"entry {report.log_index} of {report.log_size}"),
        ("checkpoint", f"{report.checkpoint_origin} root {report.checkpoint_root.hex()}"),
        ("log key", report.log_vkey + ("" if report.log_key_pinned else " (UNPINNED)")),
    ]
    fields += [("cosigned by", f"{c.name} at {_utc(c.timestamp)}") for c in report.cosignatures]
    lines += ["", "verified reading:"]
    lines += [f"  {name:>12}: {value}" for name, value in fields]
    lines += ["", "trust:"]
    lines += [f"  - {note}" for note in report.notes]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run `verify` on its own (`python -m cloud.audit.verify ...`); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="pharmasync verify",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
