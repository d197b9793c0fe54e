"""The cloud ledger's aiohttp application, built only by `make_app` (STYLE.md 5).

Resources live in cleanup contexts: the store and the ledger (opened on startup, closed
on shutdown) and the verification threads. Views are thin (cloud/api/routes/); domain errors
(LedgerError) become application/problem+json (RFC 9457) in one middleware, as do
aiohttp's own HTTP errors (404, 405, 413), so every error a client sees has one shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from cloud.api.metrics import Metrics
from cloud.api.routes import alarm_acks as ack_routes
from cloud.api.routes import (
    batches,
    config,
    events,
    evidence,
    home,
    meta,
    readings,
    receipts,
    registry,
)
from cloud.api.routes import log as log_routes
from cloud.api.state import LEDGER, METRICS, SETTINGS
from cloud.httplog import server_logger
from cloud.keys import load_or_create_signer
from cloud.services import witnessing
from cloud.services.ledger import Ledger
from cloud.settings import CloudSettings
from cloud.storage.store import Store
from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud")
PROBLEM = "application/problem+json"


def problem(status: int, reason: str, detail: str) -> web.Response:
    """An RFC 9457 problem response carrying PharmaSync's `reason`."""
    return web.json_response(
        {
            "type": "about:blank",
            "title": _title(status),
            "status": status,
            "detail": detail,
            "reason": reason,
        },
        status=status,
        content_type=PROBLEM,
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn refusals and aiohttp's HTTP errors into problem+json; count and time it."""
    metrics = request.app[METRICS]
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Refused as e:  # LedgerError and the domain modules' own refusals
        response = problem(e.status, e.reason, e.detail)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = problem(e.status, e.reason.lower(), e.text or e.reason)
        for header in ("Allow",):
            if header in e.headers:
                response.headers[header] = e.headers[header]
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = problem(500, "internal", "the server failed; the error is in its log")
    metrics.requests.labels(request.method, name, str(response.status)).inc()
    metrics.latency.labels(request.method, name).observe(time.perf_counter() - started)
    return response


async def open_store(settings: CloudSettings) -> Store:
    """Open the configured store: PostgreSQL if a database URL is set, else SQLite."""
    return await Store.open(settings.database, settings.sqlite_path)


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = await open_store(settings)
    pool = ThreadPoolExecutor(settings.verify_threads, thread_name_prefix="verify")
    try:
        signer = load_or_create_signer(settings.key_file, settings.origin)
        ledger = Ledger(store, signer, settings.owners, verify_pool=pool)
        await ledger.load_owners(settings.owners)  # the owners are the log's (0x06)
        cp = await ledger.refresh()
        app[LEDGER] = ledger
        app[METRICS].watch(ledger)
        log.info("ledger %s: %d entries; log key %s", ledger.origin, cp.size, ledger.log_vkey)
        yield
        ledger.refusal_log.flush()  # the last summary lines, before the store closes
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        await store.close()


async def _witnessing_ctx(app: web.Application) -> AsyncIterator[None]:
    peers = [witnessing.parse_peer(spec) for spec in app[SETTINGS].witnesses]
    task = asyncio.create_task(witnessing.run(app[LEDGER], peers)) if peers else None
    for peer in peers:
        log.info("witness %s (%s) will be asked to cosign", peer.url, peer.verifier.name)
    yield
    if task is not None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def make_app(settings: CloudSettings) -> web.Application:
    """Build the cloud ledger application for `settings`."""
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[problems],
        handler_args={"logger": server_logger("pharmasync.cloud.http")},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_ledger_ctx)
    app.cleanup_ctx.append(_witnessing_ctx)
    for group in (batches, log_routes, readings, registry, config, events, meta, evidence, home):
        app.add_routes(group.routes)
    app.add_routes(receipts.routes)
    app.add_routes(ack_routes.routes)  # relayed alarm acknowledgements
    return app
