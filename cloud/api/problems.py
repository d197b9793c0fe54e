"""Errors as application/problem+json (RFC 9457), the error shape of the ledger's API.

Each application declares its own error middleware: the /v1 API (cloud/api/v1.py) and the
root application (cloud/api/app.py: `/`, /metrics, /healthz and every path of no route
outside /v1) both use `problems`, so every error a client sees has one shape. A refusal of
the services (LedgerError and the domain modules' Refused) keeps its reason and status;
aiohttp's own HTTP errors (404, 405 with its Allow header, 413) keep theirs; anything else is
logged with its traceback and answered 500 without details.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.refusal import Refused

log = logging.getLogger("pharmasync.cloud")

PROBLEM: Final = "application/problem+json"
KEPT_HEADERS: Final = ("Allow",)  # of aiohttp's HTTP errors: a 405 names the methods


def problem(status: int, reason: str, detail: str) -> web.Response:
    """An RFC 9457 problem response carrying PharmaSync's `reason`."""
    return web.json_response(
        problem_json(status, reason, detail), status=status, content_type=PROBLEM
    )


def problem_json(status: int, reason: str, detail: str) -> dict[str, object]:
    """The RFC 9457 problem document of a refusal: also each refused entry's answer in a
    batch (POST /v1/tx/batch)."""
    return {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "reason": reason,
    }


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer refusals, aiohttp's HTTP errors (4xx, 5xx) and failures as problem+json.
    Redirects and other HTTP exceptions below 400 pass through."""
    try:
        return await handler(request)
    except Refused as e:  # LedgerError and the domain modules' own refusals
        return problem(e.status, e.reason, e.detail)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = problem(e.status, e.reason.lower(), e.text or e.reason)
        for header in KEPT_HEADERS:
            if header in e.headers:
                response.headers[header] = e.headers[header]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return problem(500, "internal", "the server failed; the error is in its log")
