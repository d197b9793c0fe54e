"""The gateway's local status: a page for warehouse staff, the same as JSON for scripts,
and Prometheus metrics, all from one snapshot of the running gateway.

    GET /              HTML status page (refreshes itself every 5 s)
    GET /status.json   the snapshot
    GET /metrics       Prometheus text format
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from device import reading
from device.cli import describe
from gateway.ble import BleIngest
from gateway.ingest_mqtt import MqttIngest
from gateway.service import Gateway
from gateway.uplink import Uplink


@dataclass
class Runtime:
    """The running parts of a gateway that the status reports on."""

    gateway: Gateway
    mqtt: MqttIngest | None = None
    uplink: Uplink | None = None
    ble: BleIngest | None = None


RUNTIME = web.AppKey("runtime", Runtime)
FLAG_NAMES = {
    reading.FLAG_SENSOR_ERROR: "sensor error",
    reading.FLAG_CLOCK_UNSYNCED: "clock unsynced",
    reading.FLAG_BATTERY_LOW: "battery low",
    reading.FLAG_BACKLOG: "backlog",
}


async def snapshot(rt: Runtime) -> dict[str, Any]:
    """Return everything the status page shows, as JSON-able values."""
    gw = rt.gateway
    now = time.time()
    spool_bytes = await gw.spool_call(gw.spool.size_bytes)
    unsealed, _ = await gw.spool_call(gw.spool.unsealed)
    unsent, oldest_unsent = await gw.spool_call(gw.spool.unsent)
    q_rows, q_bytes, q_dropped = await gw.spool_call(gw.spool.quarantine_usage)
    boxes = []
    labels = {b.device_id: b.label or b.device_id for b in gw.registry.all()}
    zones = {b.device_id: b.zone for b in gw.registry.all()}
    for box in gw.registry.all():
        seen = gw.last_reading.get(box.key)
        entry: dict[str, Any] = {
            "device_id": box.device_id,
            "key": box.key.hex(),
            "label": box.label,
            "zone": box.zone,
            "lot": box.lot,
            "acked_seq": gw.committed.get(box.key),
            "rejects": dict(gw.rejects_by_box.get(box.key, {})),
            "last_seen": None,
        }
        if seen is not None:
            when, r = seen
            shown = describe(r)
            entry |= {
                "mkt_c": gw.alarms.mkt(box.device_id),
                "last_seen": when,
                "seq": r.seq,
                "temperature_c": shown["temperature_c"],
                "humidity_pct": shown["humidity_pct"],
                "flags": shown["flags"],
                "battery_low": bool(r.flags & reading.FLAG_BATTERY_LOW),
            }
        boxes.append(entry)
    return {
        "site": gw.settings.site,
        "gateway_key": gw.key.hex(),
        "time": now,
        "counts": dict(gw.counts),
        "spool": {
            "bytes": spool_bytes,
            "max_bytes": gw.settings.spool.max_bytes,
            "nearly_full": spool_bytes
            > gw.settings.spool.warn_fraction * gw.settings.spool.max_bytes,
            "accepting": gw.accepting,
            "unsealed_readings": unsealed,
            "unsent_batches": unsent,
            "oldest_unsent_age_s": None if oldest_unsent is None else now - oldest_unsent,
        },
        "quarantine": {
            "rows": q_rows,
            "bytes": q_bytes,
            "dropped": q_dropped,
            "max_bytes": gw.settings.spool.quarantine_max_bytes,
            "max_rows": gw.settings.spool.quarantine_max_rows,
        },
        "mqtt": None
        if rt.mqtt is None
        else {
            "state": rt.mqtt.state.value,
            "connects": rt.mqtt.connects,
            "in_flight": rt.mqtt.in_flight,
            "last_error": rt.mqtt.last_error,
        },
        "uplink": None
        if rt.uplink is None
        else {
            "url": rt.uplink.settings.url,
            "state": rt.uplink.state.value,
            "sent": rt.uplink.sent,
            "last_error": rt.uplink.last_error,
            "last_success": rt.uplink.last_success,
        },
        "ble": None if rt.ble is None else rt.ble.status(),
        "alarms": [
            a.to_json() | {"label": labels.get(a.zone, a.zone), "zone_name": zones.get(a.zone, "")}
            for a in gw.alarms.active()
        ],
        "boxes": boxes,
    }


class _SnapshotCollector:
    """Prometheus metrics of one snapshot (a fresh registry per scrape: no second copy of
    the gateway's state to keep in step)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        p = "pharmasync_gateway_"
        readings = CounterMetricFamily(
            p + "readings", "Readings received, by outcome", labels=["result"]
        )
        rejected = CounterMetricFamily(
            p + "rejected", "Messages rejected, by reason", labels=["reason"]
        )
        for name, n in s["counts"].items():
            if name in ("accepted", "duplicate"):
                readings.add_metric([name], n)
            else:
                rejected.add_metric([name], n)
        yield readings
        yield rejected
        spool = s["spool"]
        yield GaugeMetricFamily(p + "spool_bytes", "Spool size on disk", value=spool["bytes"])
        yield GaugeMetricFamily(
            p + "spool_limit_bytes", "Spool size limit", value=spool["max_bytes"]
        )
        yield GaugeMetricFamily(
            p + "accepting", "1 unless the spool is full", value=int(spool["accepting"])
        )
        yield GaugeMetricFamily(
            p + "unsealed_readings", "Readings not yet in a batch", value=spool["unsealed_readings"]
        )
        yield GaugeMetricFamily(
            p + "unsent_batches",
            "Sealed batches the cloud has not accepted",
            value=spool["unsent_batches"],
        )
        yield GaugeMetricFamily(
            p + "oldest_unsent_batch_age_seconds",
            "Uplink lag",
            value=spool["oldest_unsent_age_s"] or 0.0,
        )
        q = s["quarantine"]
        yield GaugeMetricFamily(p + "quarantine_rows", "Rejected messages kept", value=q["rows"])
        yield GaugeMetricFamily(
            p + "quarantine_bytes", "Quarantine budget in use", value=q["bytes"]
        )
        yield GaugeMetricFamily(
            p + "quarantine_limit_bytes", "Quarantine budget", value=q["max_bytes"]
        )
        yield CounterMetricFamily(
            p + "quarantine_dropped",
            "Rejected messages dropped from quarantine (oldest first) to keep its budget",
            value=q["dropped"],
        )
        if s["mqtt"] is not None:
            yield GaugeMetricFamily(
                p + "mqtt_connected",
                "1 while subscribed to the broker",
                value=int(s["mqtt"]["state"] == "connected"),
            )
        last_seq = GaugeMetricFamily(p + "box_acked_seq", "Highest committed seq", labels=["box"])
        seen = GaugeMetricFamily(
            p + "box_last_reading_timestamp_seconds", "Last reading", labels=["box"]
        )
        temp = GaugeMetricFamily(p + "box_temperature_celsius", "Last temperature", labels=["box"])
        for b in s["boxes"]:
            if b["acked_seq"] is not None:
                last_seq.add_metric([b["device_id"]], b["acked_seq"])
            if b["last_seen"] is not None:
                seen.add_metric([b["device_id"]], b["last_seen"])
                temp.add_metric([b["device_id"]], b["temperature_c"])
        yield last_seq
        yield seen
        yield temp
        alarms = GaugeMetricFamily(
            p + "alarm_active", "1 per active alarm", labels=["zone", "kind"]
        )
        for a in s["alarms"]:
            alarms.add_metric([a["zone"], a["kind"]], 1)
        yield alarms


def metrics_text(snap: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(snap))  # type: ignore[arg-type]
    return generate_latest(registry)


async def handle_json(request: web.Request) -> web.Response:
    return web.json_response(await snapshot(request.app[RUNTIME]))


async def handle_metrics(request: web.Request) -> web.Response:
    body = metrics_text(await snapshot(request.app[RUNTIME]))
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def handle_page(request: web.Request) -> web.Response:
    return web.Response(text=render(await snapshot(request.app[RUNTIME])), content_type="text/html")


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0, int(now - then))
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def render(s: dict[str, Any]) -> str:
    """Return the status page for snapshot `s`."""
    e = html.escape
    now = s["time"]
    rows = []
    for b in s["boxes"]:
        t = b.get("temperature_c")
        flags = ", ".join(b.get("flags") or []) or "—"
        rejects = ", ".join(f"{k}: {v}" for k, v in b["rejects"].items()) or "—"
        warn = " class=warn" if b.get("flags") or t is None else ""
        temp = "—" if t is None else f"{t:.2f} °C"
        hum = "—" if t is None else f"{b['humidity_pct']:.1f} %"
        acked = "—" if b["acked_seq"] is None else str(b["acked_seq"])
        rows.append(
            f"<tr{warn}><td><b>{e(b['label'] or b['device_id'])}</b><br><small>{b['device_id']}"
            f"</small></td><td>{e(b['zone'] or '—')}</td><td>{e(b['lot'] or '—')}</td>"
            f"<td class=num>{temp}</td><td class=num>{hum}</td>"
            f"<td>{_ago(now, b['last_seen'])}</td><td class=num>{acked}</td>"
            f"<td>{e(flags)}</td><td>{e(rejects)}</td></tr>"
        )
    alarms = (
        "".join(
            f"<li class=alarm><b>{e(a['label'])}</b> ({e(a['zone_name'] or a['zone'])}): "
            f"{e(a['kind'])} since {_ago(now, a['since_s'])} — {e(a['detail'])}</li>"
            for a in s["alarms"]
        )
        or "<li>No active alarms.</li>"
    )
    sp = s["spool"]
    mqtt = s["mqtt"] or {}
    up = s["uplink"]
    uplink = (
        "not configured"
        if up is None
        else (
            f"{e(up['state'])}, {up['sent']} batches sent, "
            f"last success {_ago(now, up['last_success'])}"
            + (f" — last error: {e(up['last_error'])}" if up["last_error"] else "")
        )
    )
    body = "".join(rows) or "<tr><td colspan=9>No boxes registered.</td></tr>"
    counts = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["counts"].items())) or "nothing yet"
    full = "<p class=alarm>Spool nearly full.</p>" if sp["nearly_full"] else ""
    age = sp["oldest_unsent_age_s"]
    oldest = "—" if age is None else _ago(now, now - age)
    waiting = "" if sp["accepting"] else " — <b class=alarm>full</b>"
    mqtt_state, mqtt_connects = mqtt.get("state", "off"), mqtt.get("connects", 0)
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=5>
<title>PharmaSync gateway — {e(s["site"])}</title>
<style>
body {{ font: 15px system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} small {{ color: #666; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .45em .6em; text-align: left; }}
th {{ background: #f3f5f7; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.warn td {{ background: #fff6e0; }} .alarm {{ color: #b00020; font-weight: 600; }}
.cards {{ display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: .7em 1em; min-width: 14em; }}
</style></head><body>
<h1>PharmaSync gateway — site {e(s["site"])}</h1>
<p><small>gateway key {s["gateway_key"]}</small></p>
<h2>Alarms</h2><ul>{alarms}</ul>
<div class=cards>
<div class=card><b>Broker</b><br>{e(mqtt_state)}, {mqtt_connects} connects</div>
<div class=card><b>Spool</b><br>{sp["bytes"] / 1e6:.1f} MB of {sp["max_bytes"] / 1e6:,.0f} MB;
{sp["unsealed_readings"]:,} readings waiting for a batch{waiting}</div>
<div class=card><b>Uplink</b><br>{uplink}<br>{sp["unsent_batches"]} batches waiting,
oldest {oldest}</div>
<div class=card><b>Received</b><br>{e(counts)}</div>
</div>{full}
<h2>Boxes</h2>
<table><tr><th>Box</th><th>Zone</th><th>Lot</th><th>Temperature</th><th>Humidity</th>
<th>Last reading</th><th>Acked seq</th><th>Flags</th><th>Rejected</th></tr>
{body}
</table></body></html>
"""


def make_app(rt: Runtime) -> web.Application:
    """The status application for a running gateway."""
    app = web.Application()
    app[RUNTIME] = rt
    app.router.add_get("/", handle_page)
    app.router.add_get("/status.json", handle_json)
    app.router.add_get("/metrics", handle_metrics)
    return app
