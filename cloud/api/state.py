"""The typed keys under which the cloud app keeps its shared state (no globals).

They live on the root application; views under a sub-application (the /v1 API) read them
through `request.config_dict`, which looks in the sub-application first, then the root.
Each service (cloud/services/) has its own key, so a view names the one it uses.
"""

from __future__ import annotations

from aiohttp import web

from cloud.api.metrics import Metrics
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
from cloud.services.stock import StockService
from cloud.services.traces import TraceService
from cloud.settings import CloudSettings

SETTINGS = web.AppKey("settings", CloudSettings)
METRICS = web.AppKey("metrics", Metrics)
REFUSALS = web.AppKey("refusals", Refusals)  # shared by every service that refuses input
LOG = web.AppKey("log", LogService)  # checkpoints, entries, proofs
READINGS = web.AppKey("readings", ReadingService)  # proof bundles, history, evidence
BATCHES = web.AppKey("batches", BatchService)  # ingest, receipts
REGISTRY = web.AppKey("registry", RegistryService)  # registry changes, who is registered
CONFIG = web.AppKey("config", ConfigService)  # owners and ack keys, on the log
EVENTS = web.AppKey("events", EventService)  # gateway events
ALARM_ACKS = web.AppKey("alarm_acks", AlarmAckService)  # relayed alarm acknowledgements
CONTRACTS = web.AppKey("contracts", ContractService)  # contract transactions and state
AUTH = web.AppKey("auth", AuthService)  # sign-in for reads: challenges, bearer tokens
REPLAY = web.AppKey("replay", ReplayService)  # transaction bodies for replay grants
READS = web.AppKey("reads", ReadService)  # private records as the read matrix allows
TRACES = web.AppKey("traces", TraceService)  # recall traces, as the read policy allows
FEEDS = web.AppKey("feeds", FeedService)  # participants' notification feeds
STOCK = web.AppKey("stock", StockService)  # stock per GTIN, shortage alerts
GATEWAY_LOTS = web.AppKey("gateway_lots", GatewayLotService)  # lots of a gateway's boxes
PACKS = web.AppKey("packs", PackService)  # the pharmacy counter's check of a pack
PUBLIC_CHECK = web.AppKey("public_check", PublicCheckService)  # the Digital Link resolver's
EPCIS = web.AppKey("epcis", EpcisService)  # EPCIS 2.0 export, query and capture
