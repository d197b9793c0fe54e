"""The typed keys under which the cloud app keeps its shared state (no globals)."""

from __future__ import annotations

from aiohttp import web

from cloud.ledger import Ledger
from cloud.metrics import Metrics
from cloud.settings import CloudSettings

SETTINGS = web.AppKey("settings", CloudSettings)
LEDGER = web.AppKey("ledger", Ledger)
METRICS = web.AppKey("metrics", Metrics)
