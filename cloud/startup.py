"""What every `pharmasync` command shares at start-up: its parser, argument types that refuse
bad ports, hosts and folders at parse time, and the one translation of a failure to start
(a port in use, a database that refuses us, a folder that is a file) into one line on stderr.

`cloud.cli.main` runs every command through `explain`, so a command needs no try/except of
its own for these: it may let an OSError or a database error rise. An unexpected error (a
bug) is not explained and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL


class StartupError(Exception):
    """A command cannot start for a reason its user can fix; str() is the one-line reason."""


class HelpFormatter(argparse.HelpFormatter):
    """Wrap one-paragraph text as argparse does, but keep text with line breaks (the
    examples, a multi-paragraph description) exactly as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


class Parser(argparse.ArgumentParser):
    """The parser of `pharmasync` and, through add_subparsers, of every subcommand: usage
    errors are one line on stderr (exit 2), help keeps examples as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        # The deepest subcommand's default wins: main() names the command in its errors.
        self.set_defaults(prog=self.prog)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- argument types: refuse at parse time what cannot work ----------------------------------


def port(text: str) -> int:
    """argparse type: a TCP port to listen on, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}, want a port number 1..65535") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"got {value}, want a port number 1..65535")
    return value


def host(text: str) -> str:
    """argparse type: a host name or address that resolves (to listen on or connect to)."""
    try:
        socket.getaddrinfo(text, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        reason = e.strerror if isinstance(e, socket.gaierror) else str(e)
        raise argparse.ArgumentTypeError(
            f"got {text!r}: {reason}, want a host name or address"
        ) from None
    return text


def data_dir(text: str) -> Path:
    """argparse type: a folder that exists, or that can be created (its nearest existing
    ancestor is a folder we may write in)."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file, want a folder")
        return path
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {path}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create {path}: {ancestor} is not writable")
    return path


# --- failures to start, in one line ---------------------------------------------------------

# What to do about an errno, added to its message (which says what happened, not why).
_HINTS = {
    errno.EADDRINUSE: "another process listens there: stop it or choose another port",
    errno.EADDRNOTAVAIL: "not an address of this machine",
    errno.ECONNREFUSED: "nothing listens there",
    errno.EEXIST: "it exists and is not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def explain(exc: BaseException) -> str | None:
    """Return the one-line reason `exc` stopped a command from starting, or None if it is
    not a known start-up failure (a bug: the caller lets it rise with its traceback)."""
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve a host name: {exc.strerror}"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        hint = _HINTS.get(exc.errno or 0)
        if hint:
            reason = f"{reason} ({hint})"
        return f"{exc.filename}: {reason}" if exc.filename else reason
    asyncpg = sys.modules.get("asyncpg")  # only if a command used PostgreSQL
    if asyncpg is not None and isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        return f"PostgreSQL: {exc}"
    return None


def redact(url: str) -> str:
    """`url` without its password, fit to print."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


def _cannot_listen(host: str, port: int, error: OSError, what: str) -> StartupError:
    reason = os.strerror(error.errno) if error.errno else str(error)
    hint = _HINTS.get(error.errno or 0)
    return StartupError(f"{what} on {host}:{port}: {reason}" + (f" ({hint})" if hint else ""))


def check_can_listen(host: str, port: int, what: str = "cannot listen") -> None:
    """Raise StartupError if host:port cannot be bound now (in use, not an address of this
    machine): checked before a server opens its storage, so it fails fast and says why."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
                probe.bind(address)
    except OSError as e:
        raise _cannot_listen(host, port, e, what) from e


async def listen(runner: web.AppRunner, host: str, port: int, what: str = "cannot listen") -> None:
    """Start serving `runner` on host:port; raise StartupError saying why it cannot."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        raise _cannot_listen(host, port, e, what) from e


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    opening: str,
    on_ready: Callable[[], None] = lambda: None,
    **runner_options: Any,
) -> None:
    """Serve `app` on host:port until SIGINT or SIGTERM, then shut it down cleanly.

    A busy port (checked first), its start-up (the app's cleanup contexts: `opening` names
    what they open, e.g. "the ledger's database") and the bind raise StartupError saying why.
    `on_ready` runs once it listens.
    """
    check_can_listen(host, port)
    runner = web.AppRunner(app, **runner_options)
    try:
        await runner.setup()
    except Exception as e:
        reason = explain(e)
        if reason is None:
            raise
        raise StartupError(f"cannot open {opening}: {reason}") from e
    try:
        await listen(runner, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        on_ready()
        await stop.wait()
    finally:
        await runner.cleanup()
