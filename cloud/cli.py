"""The `pharmasync` command: one entry point, a command group per component.

Each package registers its own group (`device.cli`, `gateway.cli`), so a component's
commands live beside its code; this module only assembles them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cloud import commands as cloud_commands
from cloud import demo, lots_cli, packs_cli, startup, stock_cli
from cloud.audit import verify
from cloud.witness import server as witness
from device import cli as device_cli
from device.cliutil import examples
from device.datalock import FolderBusy
from gateway import cli as gateway_cli


def build_parser() -> argparse.ArgumentParser:
    """Return the full `pharmasync` argument parser."""
    parser = startup.Parser(
        prog="pharmasync",
        description="PharmaSync: prove where a medicine has been and how cold it was kept.",
        epilog=examples("pharmasync demo", "pharmasync cloud serve --help"),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo.register(commands)
    cloud_commands.register(commands)
    lots_cli.register(commands)
    packs_cli.register(commands)
    stock_cli.register(commands)
    verify.register(commands)
    witness.register(commands)
    device_cli.register(commands)
    gateway_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pharmasync` with `argv` (default: sys.argv[1:]); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except FolderBusy as e:  # a long-running command found its data folder taken
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into a reader that stopped early (e.g. `| head`): not worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        # A port in use, a folder that is a file, a database that refuses us: one line, not
        # a traceback (startup.explain knows each kind). Anything else is a bug: it rises.
        reason = startup.explain(e)
        if reason is None:
            raise
        print(f"{args.prog}: error: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
