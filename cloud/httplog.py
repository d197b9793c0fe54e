"""The server and access loggers of PharmaSync's aiohttp services (the cloud ledger, the
witness).

aiohttp's HTTP parser answers a malformed request (bytes no request line may hold, a
broken header) with 400 before any handler runs, and logs it at ERROR with a traceback.
That is input, not a bug, and anyone could fill the log with tracebacks: here it becomes
one WARNING line. Everything else the server logs keeps its level and traceback.

The access log (AccessLog) writes one short line per request, but none for a transaction
the contract service accepted (201 to POST /v1/tx): that service logs each one already, with
its id, type and log index, and at thousands of transactions a second aiohttp's default
line (its format parsed into a dict per request) was ~8 % of the server's time.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

LOGGED_BY_SERVICE: Final = ("POST", "/v1/tx", 201)  # the contract service logs it (above)


class _RefusedByParser(logging.Filter):
    """Rewrites a record of a 4xx refused by the HTTP parser as one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            record.msg = f"{record.getMessage()}: {exc.code} {exc.message.splitlines()[0]}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def server_logger(name: str) -> logging.Logger:
    """Return logger `name` for aiohttp's server messages (Application handler_args
    "logger"), with parser refusals logged as one line."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RefusedByParser) for f in logger.filters):
        logger.addFilter(_RefusedByParser())
    return logger


class AccessLog(AbstractAccessLogger):
    """One line per request: client, method, path and query, status, bytes sent, milliseconds;
    none for LOGGED_BY_SERVICE (module docstring). For AppRunner(access_log_class=...)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        status = response.status
        if (request.method, request.path, status) == LOGGED_BY_SERVICE:
            return
        self.logger.info(
            '%s "%s %s" %d %d %.1f ms',
            request.remote,
            request.method,
            request.path_qs,
            status,
            response.body_length,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        """Whether a line would be written at all (INFO enabled): else aiohttp skips log()."""
        return self.logger.isEnabledFor(logging.INFO)
