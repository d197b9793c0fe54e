"""Prometheus metrics of the cloud service, in a registry of the app's own (no globals)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud.services.batches import BatchService
from cloud.services.config import ConfigService
from cloud.services.events import EventService
from cloud.services.log import LogService
from cloud.services.refusals import Refusals
from cloud.services.registry import RegistryService


@dataclass(frozen=True)
class Watched:
    """The services whose counters the metrics export."""

    log: LogService
    batches: BatchService
    registry: RegistryService
    config: ConfigService
    events: EventService
    refusals: Refusals


class _ServiceCollector(Collector):
    """Reads the services' own counters at scrape time."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        w = self.watched
        stats, cp = w.batches.stats, w.log.checkpoint
        yield GaugeMetricFamily("pharmasync_log_size", "Entries in the latest checkpoint", cp.size)
        for name, value, doc in (
            ("batches", stats.batches, "Batches stored by this worker"),
            ("readings", stats.readings, "Readings stored by this worker, each (box, seq) once"),
            (
                "duplicate_readings",
                stats.duplicates,
                "Batch leaves that carried a stored reading again (duplicate sightings)",
            ),
            (
                "equivocations",
                stats.equivocations,
                "Batch leaves with other signed bytes for a stored (box, seq): a cloned key?",
            ),
            ("resends", stats.resends, "Exact batch resends answered with their receipt"),
            ("registry_changes", w.registry.applied, "Registry changes applied"),
            ("config_changes", w.config.changes, "Owner changes (bootstrap included) logged"),
            ("gateway_events", w.events.stored, "Gateway events stored by this worker"),
            ("gateway_event_resends", w.events.resends, "Stored gateway events sent again"),
        ):
            yield CounterMetricFamily(f"pharmasync_{name}", doc, value)
        refused = CounterMetricFamily(
            "pharmasync_refused", "Refused requests by reason", labels=["reason"]
        )
        for reason, count in sorted(w.refusals.counts.items()):
            refused.add_metric([reason], count)
        yield refused


class Metrics:
    """The app's metrics: HTTP requests by route and status, latency, the services' counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pharmasync_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pharmasync_http_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def watch(self, services: Watched) -> None:
        """Export the services' counters too."""
        self.registry.register(_ServiceCollector(services))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
