"""The ledger's HTTP client for the `pharmasync` commands that talk to it (lots, packs, stock,
feed, EPCIS): the common --cloud/--key/--json options, signing and sending one transaction
(POST /v1/tx), a JSON GET as the public or signed in with a key file, and the one way a
refusal is printed. Each returns what a command's handler exits with."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from cloud import settings
from cloud.audit.log_client import FetchError
from cloud.audit.replay import sign_in
from cloud.commands import post_json, read_answer
from cloud.contracts import tx
from device.cliutil import print_record, read_secret

CLOUD = f"http://127.0.0.1:{settings.DEFAULT_PORT}"  # the ledger `pharmasync cloud serve` runs
T = TypeVar("T")
MAX_ANSWER = 64 << 20  # a trace of 10,000 lots is a few MB
TIMEOUT_S = 60.0  # one command's whole exchange with the ledger (it answers in milliseconds)
MAX_SHOWN = 300  # characters of a server's reason or detail printed


def common_options(parser: argparse.ArgumentParser, key_help: str | None) -> None:
    """Add --cloud, --json and (unless `key_help` is None) a required --key FILE."""
    parser.add_argument("--cloud", default=CLOUD, help="the ledger's URL (default: %(default)s)")
    if key_help is not None:
        parser.add_argument("--key", type=Path, required=True, help=key_help)
    parser.add_argument("--json", action="store_true", help="print JSON")


async def send_tx(
    cloud: str,
    secret: bytes,
    contract: str,
    tx_type: str,
    fields: dict[str, Any],
    time_ms: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """Sign one transaction with `secret` (its own time `time_ms`, default now) and POST it
    to the ledger at `cloud`; return the HTTP status and the JSON object answered (201: where
    it was applied; else a problem+json with `reason` and `detail`). Raises tx.TxError for
    fields no transaction can carry, aiohttp.ClientError, ValueError (an answer that is no
    bounded JSON object)."""
    signed = tx.make(contract, tx_type, fields, secret, time_ms=time_ms)
    return await post_json(f"{cloud.rstrip('/')}/v1/tx", signed.to_envelope())


def post_tx(
    args: argparse.Namespace,
    contract: str,
    tx_type: str,
    fields: dict[str, Any],
    time_ms: int | None = None,
) -> tuple[int, dict[str, Any]] | int:
    """Sign one transaction with --key (its own time `time_ms`, default now) and POST it to
    --cloud; return (status, answer), or the exit code after printing why it could not be
    sent (2: an unusable key file or fields; 1: the ledger is unreachable)."""
    if (secret := read_secret(args.key, "--key")) is None:
        return 2
    try:
        return _run(send_tx(args.cloud, secret, contract, tx_type, fields, time_ms))
    except tx.TxError as e:
        print(f"error: {e.reason}: {e.detail}", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, ValueError, TimeoutError) as e:
        return unreachable(args.cloud, e)


def send(
    args: argparse.Namespace,
    contract: str,
    tx_type: str,
    fields: dict[str, Any],
    time_ms: int | None = None,
) -> int:
    """Sign and send one transaction (its own time `time_ms`, default now); print where it
    was applied (exit 0), or why not (1; 2 for an unusable key file)."""
    got = post_tx(args, contract, tx_type, fields, time_ms)
    if isinstance(got, int):
        return got
    status, answer = got
    if status != 201:
        return refused(status, answer)
    print_record({"applied": f"{contract}/{tx_type}", **answer}, args.json)
    return 0


async def get_json(
    url: str,
    session: aiohttp.ClientSession | None = None,
    token: str = "",
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """GET a JSON object (with a bearer token if one is given, and any other `headers`), in
    `session` or a new one."""
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await get_json(url, own, token, headers)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with session.get(url, headers=sent) as resp:
        return resp.status, await read_answer(resp, MAX_ANSWER)


def signed_in_get(
    args: argparse.Namespace, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any]] | int:
    """Sign in with --key and GET `path`; return (status, answer), or the exit code after
    printing why not (2: an unusable key file; 1: the ledger refused or is unreachable)."""
    if (secret := read_secret(args.key, "--key")) is None:
        return 2
    url = args.cloud.rstrip("/")

    async def get() -> tuple[int, dict[str, Any]] | int:
        async with aiohttp.ClientSession() as session:
            token, why = await sign_in(session, url, secret)
            if not token:
                print(f"error: sign-in refused: {why}", file=sys.stderr)
                return 1
            return await get_json(f"{url}{path}", session, token, headers)

    try:
        return _run(get())
    except (aiohttp.ClientError, ValueError, FetchError, TimeoutError) as e:
        return unreachable(args.cloud, e)


def read_as(
    args: argparse.Namespace, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any]] | int:
    """GET `path` signed in with --key if given (else as the public); return (status,
    answer), or the exit code after printing why not (1: unreachable or refused sign-in;
    2: an unusable key file)."""
    if args.key is not None:
        return signed_in_get(args, path, headers)
    try:
        return _run(get_json(args.cloud.rstrip("/") + path, headers=headers))
    except (aiohttp.ClientError, ValueError, TimeoutError) as e:
        return unreachable(args.cloud, e)


def _run(call: Coroutine[Any, Any, T]) -> T:
    """Run one exchange with the ledger to its end, or raise TimeoutError after TIMEOUT_S
    (aiohttp's own default waits 5 minutes, then raised what no command caught)."""
    return asyncio.run(asyncio.wait_for(call, TIMEOUT_S))


def unreachable(cloud: str, error: Exception) -> int:
    """Print in one line why the ledger at `cloud` gave no usable answer; return 1."""
    why = f"no answer within {TIMEOUT_S:g} s" if isinstance(error, TimeoutError) else error
    print(f"error: {cloud}: {type(error).__name__}: {shown(why)}", file=sys.stderr)
    return 1


def shown(value: object) -> str:
    """`value` as one line of at most MAX_SHOWN characters: a server's text may hold
    newlines or terminal escapes, shown escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def refused(status: int, answer: dict[str, Any]) -> int:
    """Print the ledger's refusal (its problem+json `reason` and `detail`) in one line;
    return 1."""
    reason, detail = shown(answer.get("reason")), shown(answer.get("detail"))
    print(f"error: HTTP {status}: {reason}: {detail}", file=sys.stderr)
    return 1
