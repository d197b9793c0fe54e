"""Prometheus metrics of the cloud service, in a registry of the app's own (no globals)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud.services.ledger import Ledger


class _LedgerCollector(Collector):
    """Reads the ledger's own counters at scrape time."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        stats, cp = self.ledger.stats, self.ledger.checkpoint
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
            ("registry_changes", stats.registry_changes, "Registry changes applied"),
            ("config_changes", stats.config_changes, "Owner changes (bootstrap included) logged"),
            ("gateway_events", stats.events, "Gateway events stored by this worker"),
            ("gateway_event_resends", stats.event_resends, "Stored gateway events sent again"),
        ):
            yield CounterMetricFamily(f"pharmasync_{name}", doc, value)
        refused = CounterMetricFamily(
            "pharmasync_refused", "Refused requests by reason", labels=["reason"]
        )
        for reason, count in sorted(self.ledger.refused.items()):
            refused.add_metric([reason], count)
        yield refused


class Metrics:
    """The app's metrics: HTTP requests by route and status, latency, the ledger's counters."""

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

    def watch(self, ledger: Ledger) -> None:
        """Export the ledger's counters too."""
        self.registry.register(_LedgerCollector(ledger))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
