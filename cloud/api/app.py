"""The cloud ledger's aiohttp application, built only by `make_app` (STYLE.md 5).

    /          the landing page (routes/home.py)           root application
    /metrics   Prometheus metrics (routes/meta.py)         root application
    /healthz   health check (routes/meta.py)               root application
    /01/...    GS1 Digital Link resolver (routes/resolver.py)   root application
    /v1/...    the API (cloud/api/v1.py)                   sub-application, its own errors
    /epcis/... EPCIS 2.0 REST bindings (cloud/api/epcis.py) sub-application, EPCIS problems

Resources live in cleanup contexts: the store, the verification threads and the services
built over them (opened on startup, closed on shutdown; cloud/services/, one job each), each
under its own key (cloud/api/state.py), and the witnessing task. Every application declares
its error middleware: the root's and the /v1 API's answer application/problem+json (RFC 9457,
cloud/api/problems.py), so a 404 or 405 reads the same inside /v1 and outside it; a FHIR
sub-application would answer OperationOutcome (cloud/api/v1.py says where it goes). The
root's outermost middleware counts and times every request, whichever application answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from aiohttp import web
from aiohttp.typedefs import Handler

from cloud.api.epcis import PREFIX as EPCIS_PREFIX
from cloud.api.epcis import make_epcis_app
from cloud.api.metrics import Metrics, Watched
from cloud.api.problems import problems
from cloud.api.routes import home, meta, resolver
from cloud.api.state import (
    ALARM_ACKS,
    AUTH,
    BATCHES,
    CONFIG,
    CONTRACTS,
    EPCIS,
    EVENTS,
    FEEDS,
    GATEWAY_LOTS,
    LOG,
    METRICS,
    PACKS,
    PUBLIC_CHECK,
    READINGS,
    READS,
    REFUSALS,
    REGISTRY,
    REPLAY,
    SETTINGS,
    STOCK,
    TRACES,
)
from cloud.api.v1 import PREFIX, make_v1_app
from cloud.httplog import server_logger
from cloud.keys import load_or_create_signer
from cloud.services import witnessing
from cloud.services.alarm_acks import AlarmAckService
from cloud.services.auth import AuthService
from cloud.services.batches import BatchService
from cloud.services.config import ConfigService
from cloud.services.contracts import ContractService
from cloud.services.epcis import EpcisService
from cloud.services.events import EventService
from cloud.services.feeds import FeedService
from cloud.services.gateway_lots import GatewayLotService
from cloud.services.log import LogService
from cloud.services.packs import PackService
from cloud.services.public_check import PublicCheckService
from cloud.services.readings import ReadingService
from cloud.services.reads import ReadService
from cloud.services.refusals import Refusals
from cloud.services.registry import RegistryService
from cloud.services.replay import ReplayService
from cloud.services.shared import Shared
from cloud.services.stock import StockService
from cloud.services.traces import TraceService
from cloud.settings import CloudSettings
from cloud.storage.store import Store

log = logging.getLogger("pharmasync.cloud")


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by method, route and status (the outermost middleware:
    the error middlewares inside it have made every failure a response)."""
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:  # a redirect: the error middlewares pass those on
        status = e.status
        raise
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, name, str(status)).inc()
        metrics.latency.labels(request.method, name).observe(time.perf_counter() - started)


async def open_store(settings: CloudSettings) -> Store:
    """Open the configured store: PostgreSQL if a database URL is set, else SQLite."""
    return await Store.open(settings.database, settings.sqlite_path)


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store and the verification threads, build the services over them, and
    write the `serve --owner` bootstrap to the log if it has none; close all on shutdown."""
    settings = app[SETTINGS]
    store = await open_store(settings)
    pool = ThreadPoolExecutor(settings.verify_threads, thread_name_prefix="verify")
    try:
        signer = load_or_create_signer(settings.key_file, settings.origin)
        shared = Shared(
            store,
            LogService(store, signer),
            Refusals(),
            verify_pool=pool,
            verify_threads=settings.verify_threads,
        )
        config = ConfigService(shared)
        await config.load_owners(settings.owners)  # the owners are the log's (0x06)
        await config.load_regulators(settings.regulators)  # the log's (0x06), followed by:
        # The contracts follow the readings of boxes on lots: batches are stored through them.
        contracts = ContractService(shared)
        watched = Watched(
            log=shared.log,
            batches=BatchService(shared, contracts),
            registry=RegistryService(shared),
            config=config,
            events=EventService(shared),
            refusals=shared.refusals,
        )
        app[REFUSALS] = shared.refusals
        app[LOG] = shared.log
        app[READINGS] = ReadingService(shared)
        app[BATCHES] = watched.batches
        app[REGISTRY] = watched.registry
        app[CONFIG] = config
        app[EVENTS] = watched.events
        app[ALARM_ACKS] = AlarmAckService(shared, config)
        app[CONTRACTS] = contracts
        app[AUTH] = AuthService(shared, app[CONTRACTS], config)
        app[REPLAY] = ReplayService(shared, config)
        app[TRACES] = TraceService(shared, app[CONTRACTS])
        app[READS] = ReadService(app[CONTRACTS], app[TRACES].index)  # both follow load()'s replay
        app[FEEDS] = FeedService(shared, app[CONTRACTS])
        app[STOCK] = StockService(shared, app[CONTRACTS], app[FEEDS])  # after the feeds
        app[GATEWAY_LOTS] = GatewayLotService(shared, app[CONTRACTS])
        app[PACKS] = PackService(shared, app[CONTRACTS])
        app[PUBLIC_CHECK] = PublicCheckService(shared, app[CONTRACTS])  # /01/... resolver
        app[EPCIS] = EpcisService(shared, app[CONTRACTS], app[TRACES].index)
        head = await app[CONTRACTS].load()  # the contracts' state, rebuilt by replay
        log.info("contracts: %d records, root %s", head.records, head.root.hex()[:16])
        cp = await shared.log.refresh()
        app[METRICS].watch(watched)
        log.info("ledger %s: %d entries; log key %s", signer.name, cp.size, shared.log.log_vkey)
        yield
        shared.refusals.flush()  # the last summary lines, before the store closes
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        await store.close()


async def _close_feeds(app: web.Application) -> None:
    """On shutdown, before the server waits for open requests: end the feed streams
    (aiohttp's on_shutdown is where long-lived responses are closed)."""
    if FEEDS in app:
        app[FEEDS].close()


async def _witnessing_ctx(app: web.Application) -> AsyncIterator[None]:
    peers = [witnessing.parse_peer(spec) for spec in app[SETTINGS].witnesses]
    task = asyncio.create_task(witnessing.run(app[LOG], peers)) if peers else None
    for peer in peers:
        log.info("witness %s (%s) will be asked to cosign", peer.url, peer.verifier.name)
    yield
    if task is not None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def make_app(settings: CloudSettings) -> web.Application:
    """Build the cloud ledger application for `settings`: the root application with the
    /v1 API mounted as its sub-application."""
    app = web.Application(
        client_max_size=settings.max_body,
        middlewares=[measured, problems],
        handler_args={"logger": server_logger("pharmasync.cloud.http")},
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_services_ctx)
    app.cleanup_ctx.append(_witnessing_ctx)
    app.on_shutdown.append(_close_feeds)
    app.add_routes(home.routes)
    app.add_routes(meta.routes)
    app.add_routes(resolver.routes)  # GS1 Digital Link paths live at the host's root
    app.add_subapp(PREFIX, make_v1_app())
    app.add_subapp(EPCIS_PREFIX, make_epcis_app())  # EPCIS 2.0 REST bindings
    return app
