"""The server logger of PharmaSync's aiohttp services (the cloud ledger, the witness).

aiohttp's HTTP parser answers a malformed request (bytes no request line may hold, a
broken header) with 400 before any handler runs, and logs it at ERROR with a traceback.
That is input, not a bug, and anyone could fill the log with tracebacks: here it becomes
one WARNING line. Everything else the server logs keeps its level and traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


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
