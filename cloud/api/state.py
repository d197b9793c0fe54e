"""The typed keys under which the cloud app keeps its shared state (no globals)."""

from __future__ import annotations

from aiohttp import web

from cloud.api.metrics import Metrics
from cloud.services.ledger import Ledger
from cloud.settings import CloudSettings

SETTINGS = web.AppKey("settings", CloudSettings)
LEDGER = web.AppKey("ledger", Ledger)
METRICS = web.AppKey("metrics", Metrics)
