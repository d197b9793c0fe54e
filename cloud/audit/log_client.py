"""A client of the ledger's public log API, for auditors: it fetches, it never trusts.

    GET /v1/log/vkey                               the log's verifier key line (text)
    GET /v1/checkpoint                             the latest signed checkpoint note (text)
    GET /v1/log/entries?start=S&end=E              {"start": S, "entries": [hex, ...]}
    GET /v1/log/entries/{index}/readings           a batch entry's readings (octet-stream)
    GET /v1/log/proof/consistency?old=M&new=N      {"old": M, "new": N, "proof": [hex]}

Errors are application/problem+json with a `reason`. Connection failures, timeouts, 429
and 5xx are retried with exponential backoff; other statuses and answers that break the
API's shape fail at once. What the answers *mean* (signatures, proofs, roots) is checked by
the caller (cloud.audit.follow): this module only guarantees shapes, and bounds: an answer is
read up to MAX_ANSWER_BYTES, its JSON parsed by gateway/jsonbound.py.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final

import aiohttp

from gateway import jsonbound

# The largest answer read: a batch's readings (65,536 x 110 bytes) or a page of 1,000
# entries in hex fit; a log that sends more is not following its API.
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
MAX_PROBLEM_BYTES: Final = 64 * 1024  # an error body: only its reason and detail are shown
# Entries pages are at most this long (the API's limit); a longer answer is malformed.
MAX_PAGE: Final = 1000
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_HEX = re.compile("(?:[0-9a-fA-F]{2})*")


class FetchError(Exception):
    """The log could not be read: network failure after retries, or an HTTP error."""


class ProtocolError(FetchError):
    """The log answered, but not in the shape its API promises."""


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        got = repr(value[:24]) if isinstance(value, str) else type(value).__name__
        raise ProtocolError(f"{what}: got {got}, want hex")
    return bytes.fromhex(value)


def _hex_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what}: got {type(value).__name__}, want a list of hex")
    return [_hex(item, f"{what}[{i}]") for i, item in enumerate(value)]


def _expect(doc: dict[str, Any], key: str, want: int, what: str) -> None:
    if doc.get(key) != want:
        raise ProtocolError(f"{what} {key}: got {doc.get(key)!r}, want {want}")


class LogClient:
    """Reads one log's public API over an aiohttp session the caller owns."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        retries: int = 4,
        backoff_s: float = 1.0,
    ) -> None:
        """`retries` extra attempts per request, waiting backoff_s * 2**attempt before each."""
        self.session = session
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s

    async def _get(self, path: str, params: dict[str, int] | None = None) -> tuple[str, bytes]:
        """Return (content type, body) of a 200 answer. Raises FetchError."""
        target = self.url + path
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with self.session.get(target, params=params) as resp:
                    body = await _read(resp, MAX_ANSWER_BYTES, f"GET {target}")
                    if resp.status == 200:
                        return resp.content_type, body
                    last = f"HTTP {resp.status}{_problem(resp.content_type, body)}"
                    if resp.status not in RETRY_STATUSES:
                        break
            except (aiohttp.ClientError, TimeoutError) as e:
                last = str(e) or type(e).__name__
        raise FetchError(f"GET {target}{_query(params)}: {last}")

    async def _text(self, path: str) -> str:
        _, body = await self._get(path)
        try:
            return body.decode()
        except UnicodeDecodeError as e:
            raise ProtocolError(f"GET {path}: got invalid UTF-8 at byte {e.start}") from None

    async def _json(self, path: str, params: dict[str, int]) -> dict[str, Any]:
        _, body = await self._get(path, params)
        try:
            doc = jsonbound.loads(body, max_bytes=MAX_ANSWER_BYTES, what=f"GET {path}")
        except jsonbound.JsonError as e:
            raise ProtocolError(e.detail) from None
        if not isinstance(doc, dict):
            raise ProtocolError(f"GET {path}: got {type(doc).__name__}, want a JSON object")
        return doc

    async def vkey(self) -> str:
        """Return the log's verifier key line as served (stripped). Raises FetchError."""
        return (await self._text("/v1/log/vkey")).strip()

    async def checkpoint(self) -> str:
        """Return the latest checkpoint note as served. Raises FetchError."""
        return await self._text("/v1/checkpoint")

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Return entries [start, start + k) for some 1 <= k <= min(end - start, MAX_PAGE).

        Requires start < end. Raises FetchError, ProtocolError for an empty, too long or
        misplaced page.
        """
        path = "/v1/log/entries"
        doc = await self._json(path, {"start": start, "end": end})
        _expect(doc, "start", start, path)
        entries = _hex_list(doc.get("entries"), f"{path} entries")
        if not 1 <= len(entries) <= min(end - start, MAX_PAGE):
            raise ProtocolError(
                f"{path}?start={start}&end={end}: got {len(entries)} entries, "
                f"want 1..{min(end - start, MAX_PAGE)}"
            )
        return entries

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Return the consistency proof hashes from tree size `old` to `new`. Raises FetchError."""
        path = "/v1/log/proof/consistency"
        doc = await self._json(path, {"old": old, "new": new})
        _expect(doc, "old", old, path)
        _expect(doc, "new", new, path)
        return _hex_list(doc.get("proof"), f"{path} proof")

    async def batch_readings(self, index: int) -> bytes:
        """Return the raw readings of batch entry `index` (110 bytes each). Raises FetchError."""
        _, body = await self._get(f"/v1/log/entries/{index}/readings")
        return body


async def _read(resp: aiohttp.ClientResponse, max_bytes: int, what: str) -> bytes:
    """Return the body of `resp`, at most `max_bytes`. Raises ProtocolError for more."""
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise ProtocolError(f"{what}: got {resp.content_length} bytes, want at most {max_bytes}")
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > max_bytes:
            raise ProtocolError(f"{what}: got over {max_bytes} bytes, want at most {max_bytes}")
    return bytes(body)


def _problem(content_type: str, body: bytes) -> str:
    """Return ': <reason>: <detail>' from a problem+json body, or a short text excerpt: one
    line of printable text, whatever the server sent (it ends up on a terminal)."""
    if content_type == "application/problem+json":
        try:
            doc = jsonbound.loads(body, max_bytes=MAX_PROBLEM_BYTES, what="problem")
        except jsonbound.JsonError:
            doc = None
        if isinstance(doc, dict):
            said = f"{doc.get('reason', '?')}: {doc.get('detail', '')}"
            return f": {printable(said)}".rstrip(": ")
    text = printable(body[:200].decode(errors="replace"))
    return f": {text}" if text else ""


def printable(text: str, limit: int = 300) -> str:
    """`text` on one line, without control characters, at most `limit` characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text[:limit]).split())


def _query(params: dict[str, int] | None) -> str:
    return "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
