"""Serving an aiohttp app on a real port from a thread of its own, and raw HTTP requests to
it: what the property tests need, whose examples run synchronously (hypothesis) against a
server that lives for the whole module."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote_from_bytes

from aiohttp import web

T = TypeVar("T")
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def problem(self) -> dict[str, Any]:
        """The problem+json document of an error answer. Fails the test if it is none."""
        assert self.content_type == PROBLEM, (self.status, self.content_type, self.body[:300])
        doc = json.loads(self.body)
        assert doc["status"] == self.status, doc
        assert isinstance(doc["reason"], str) and doc["reason"], doc
        assert isinstance(doc["detail"], str) and doc["detail"], doc
        return doc


class Served:
    """`app` served on 127.0.0.1 by an event loop on its own thread, while in a `with`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the server's loop and return its result."""
        done: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return done.result(timeout=120)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> Served:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request (`target`: the path and query, already percent-encoded) on a
        connection of its own; return the answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip()
            return Answer(resp.status, ctype, resp.read())
        finally:
            conn.close()


def encode(part: str | bytes) -> str:
    """Percent-encode a path segment or query value: any bytes, and text as UTF-8 (which
    may hold lone surrogates: those go out as the bytes Python's surrogatepass makes)."""
    raw = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
    return quote_from_bytes(raw, safe="")
