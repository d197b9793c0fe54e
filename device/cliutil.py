"""What the `pharmasync` commands share (host side, CPython only): argparse types that refuse
bad input at parse time with a got/want message, the --help examples every command lists
(tests/test_help_examples.py reads them back with `examples_of` and runs them), printing a
record, a reading described for people, and `keygen`, which `device keygen` and `cloud
keygen` both run.

Every command group (device/cli.py, gateway/cli.py, cloud/commands.py, the witness, the
auditor's `verify`) imports these from here; device/cli.py holds only `pharmasync device`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from device import reading, schnorr
from device.keyfile import create_secret_text

# The examples' box folder: `provision` names it by the box's id (its key's first 8 bytes).
BOX = "boxes/9849e78b1c2d3e4f"

EXAMPLES_HEADING = "examples:"


def examples(*commands: str) -> str:
    """The epilog of a command's --help listing `commands` as examples, one per line, in the
    form `examples_of` reads back (tests/test_help_examples.py runs every one)."""
    return "\n".join([EXAMPLES_HEADING, *(f"  {command}" for command in commands)])


def examples_of(parser: argparse.ArgumentParser) -> list[str]:
    """The example commands in `parser`'s epilog (see `examples`)."""
    text = parser.epilog or ""
    if EXAMPLES_HEADING not in text:
        return []
    lines = text.split(EXAMPLES_HEADING, 1)[1].splitlines()
    return [line.strip() for line in lines if line.strip().startswith("pharmasync ")]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1, with a got/want message otherwise."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, want a whole number >= 1")
    return value


def hex_bytes(value: str) -> bytes:
    """argparse type: bytes from hex text, from hex on stdin when `value` is '-', or from the
    hex in the file `@PATH` (such as the OUT.pub that keygen writes)."""
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {e}") from None
    else:
        text = sys.stdin.read() if value == "-" else value
    try:
        return bytes.fromhex(text.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not hex: {e}") from None


def key_hex(value: str) -> str:
    """argparse type: a 32-byte x-only public key, given as hex or as @FILE holding it, as
    lowercase hex."""
    key = hex_bytes(value)
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f"got {len(key)} bytes, want a 32-byte x-only key")
    return key.hex()


def read_secret(path: Path, option: str) -> bytes | None:
    """Read a secret key file given as `option` (e.g. "--owner-key"); print one line saying
    why it cannot be used and return None (the command then exits 2)."""
    from device import config

    try:
        secret = config.load_secret(str(path))
        schnorr.pubkey(secret)  # a valid secret key, not just 64 hex digits
    except (OSError, ValueError) as e:  # ConfigError is a ValueError
        print(f"error: {option}: {e}", file=sys.stderr)
        return None
    return secret


def print_record(fields: dict[str, object], as_json: bool) -> None:
    """Print `fields` as indented JSON or as aligned `name: value` lines; a nested object's
    members get lines of their own, named `name.member`."""
    if as_json:
        print(json.dumps(fields, indent=2))
        return
    for name, value in _flat(fields):
        print(f"{name:>16}: {value}")


def _flat(fields: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    lines: list[tuple[str, object]] = []
    for name, value in fields.items():
        if isinstance(value, dict) and value:
            lines += _flat(value, f"{prefix}{name}.")
        else:
            lines.append((f"{prefix}{name}", value))
    return lines


def keygen(args: argparse.Namespace) -> int:
    """Write a new BIP-340 secret key to args.out and its public key to args.out with the
    suffix .pub (never overwriting either), and print the public key."""
    secret = os.urandom(32)
    # os.urandom is below the group order n with overwhelming probability; pubkey() checks it.
    key = schnorr.pubkey(secret)
    public = args.out.with_suffix(".pub")
    if public == args.out:
        print(
            f"error: {args.out}: want a name not ending in .pub (that is for the public key)",
            file=sys.stderr,
        )
        return 2
    for path in (args.out, public):
        if path.exists():
            print(f"error: {path} exists; refusing to overwrite a key", file=sys.stderr)
            return 2
    try:
        create_secret_text(args.out, secret.hex())
    except FileExistsError:  # made between the check and now: still never overwritten
        print(f"error: {args.out} exists; refusing to overwrite a key", file=sys.stderr)
        return 2
    public.write_text(key.hex() + "\n")
    print(f"secret key written to {args.out} (keep it secret: it signs as this key)")
    print(f"public key: {key.hex()} (written to {public})")
    return 0


def describe(r: reading.Reading) -> dict[str, object]:
    """Return a reading as plain JSON-able values, flags spelled out."""
    names = {
        reading.FLAG_SENSOR_ERROR: "sensor_error",
        reading.FLAG_CLOCK_UNSYNCED: "clock_unsynced",
        reading.FLAG_BATTERY_LOW: "battery_low",
        reading.FLAG_BACKLOG: "backlog",
    }
    return {
        "device_key": r.key.hex(),
        "seq": r.seq,
        "time": r.time,
        "temperature_c": r.temperature / 100,
        "humidity_pct": r.humidity / 100,
        "flags": [name for bit, name in names.items() if r.flags & bit],
        "signature": r.signature.hex(),
    }
