"""The /v1 API: a sub-application of its own (aiohttp `add_subapp`), with its own error
middleware (cloud/api/problems.py: application/problem+json, RFC 9457).

Its routes are written relative to /v1 (cloud/api/routes/). Its views read the services
from the root application through `request.config_dict` (cloud/api/state.py); the root
application builds them, once, for every sub-application.

Room for more: a FHIR API would be another sub-application (e.g. cloud/api/fhir.py, mounted
at /fhir by cloud/api/app.py) whose error middleware answers a FHIR OperationOutcome
resource instead of problem+json, over the same services; nothing here changes for it.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from cloud.api.problems import problems
from cloud.api.routes import (
    alarm_acks,
    auth,
    batches,
    certificates,
    config,
    contracts,
    epcis,
    events,
    evidence,
    feeds,
    gateway_lots,
    log,
    lot_columns,
    lot_history,
    openapi,
    packs,
    participants,
    readings,
    receipts,
    registry,
    stock,
    traces,
)

PREFIX: Final = "/v1"
GROUPS: Final = (
    batches,
    log,
    readings,
    registry,
    config,
    events,
    evidence,
    receipts,
    alarm_acks,
    gateway_lots,
    contracts,
    lot_columns,
    participants,
    certificates,
    lot_history,
    auth,
    traces,
    feeds,
    stock,
    packs,
    epcis,
    openapi,
)


def make_v1_app() -> web.Application:
    """Build the /v1 sub-application: every route group under PREFIX, and its errors as
    problem+json. Mount it with `app.add_subapp(PREFIX, make_v1_app())`."""
    app = web.Application(middlewares=[problems])
    for group in GROUPS:
        app.add_routes(group.routes)
    return app
