"""The gateway's local status: a page for warehouse staff, the same as JSON for scripts,
and Prometheus metrics, all from one snapshot of the running gateway.

    GET /              HTML status page (refreshes itself every 5 s)
    GET /status.json   the snapshot
    GET /metrics       Prometheus text format
    POST /alarms/{id}/ack      acknowledge an alarm: form or JSON {"by", "token"}; needs
                               [notify] ack_token (the page has no login: the token is it)
    POST /alarms/ack-signed    apply a signed acknowledgement (gateway/alarm_ack.py); its
                               signature is its authority, so no token
Refusals, and aiohttp's own 404/405/413, are application/problem+json {"reason",
"detail"}, 4xx, never 500.
"""

from __future__ import annotations

import hmac
import html
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from device import reading
from device.cliutil import describe
from gateway import alarm_ack
from gateway.ack_relay import AckRelay
from gateway.ble import BleIngest
from gateway.escalation import AckResult, Escalation
from gateway.ingest_mqtt import MqttIngest
from gateway.lots_follow import LotsFollower
from gateway.registry_follow import RegistryFollower
from gateway.service import Gateway
from gateway.uplink import Uplink


@dataclass
class Runtime:
    """The running parts of a gateway that the status reports on."""

    gateway: Gateway
    mqtt: MqttIngest | None = None
    uplink: Uplink | None = None
    ble: BleIngest | None = None
    escalation: Escalation | None = None
    registry_follow: RegistryFollower | None = None  # [registry] follow = true
    ack_relay: AckRelay | None = None  # alarm acks relayed by the cloud (with follow)
    lots_follow: LotsFollower | None = None  # [lots] follow = true with an [uplink] url


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
    cosigned, uncosigned = await gw.spool_call(gw.spool.cosigned_counts)
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
        applied = gw.lots_applied.get(box.device_id)
        # The lots the cloud says it is on now, whose profiles its alarms apply; those left
        # out because their range has nothing in common with the others'.
        entry["lots"] = [] if applied is None else list(applied.lots)
        entry["lot_conflicts"] = [] if applied is None else list(applied.conflicts)
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
            # cosigned receipts ([uplink] cosignatures; 0: not fetched)
            "cosignatures": rt.uplink.settings.cosignatures,
            "cosigned": cosigned,
            "uncosigned": uncosigned,
            "cosigned_refused": rt.uplink.cosigned_refused,
        },
        "ble": None if rt.ble is None else rt.ble.status(),
        "alarms": [
            a.to_json() | {"label": labels.get(a.zone, a.zone), "zone_name": zones.get(a.zone, "")}
            for a in gw.alarms.active()
        ],
        "boxes": boxes,
        "notify": None if rt.escalation is None else rt.escalation.snapshot(),
        "registry_follow": None if rt.registry_follow is None else rt.registry_follow.snapshot(),
        "ack_relay": None if rt.ack_relay is None else rt.ack_relay.snapshot(),
        "lots_follow": None if rt.lots_follow is None else rt.lots_follow.snapshot(),
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
        up = s["uplink"]
        if up is not None and up["cosignatures"]:
            yield GaugeMetricFamily(
                p + "cosigned_receipts",
                "Batches with a checked cosigned receipt",
                value=up["cosigned"],
            )
            yield GaugeMetricFamily(
                p + "uncosigned_batches",
                "Accepted batches still waiting for a cosigned receipt",
                value=up["uncosigned"],
            )
            yield CounterMetricFamily(
                p + "cosigned_receipts_refused",
                "Cosigned receipts from the cloud that did not check",
                value=up["cosigned_refused"],
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
        if s["notify"] is not None:
            yield from _notify_metrics(s["notify"])
        if s["registry_follow"] is not None:
            refused = CounterMetricFamily(
                p + "registry_refused", "Cloud registry entries refused", labels=["reason"]
            )
            for reason, count in s["registry_follow"]["refused"].items():
                refused.add_metric([reason], count)
            yield refused
        if s["lots_follow"] is not None:
            lots = GaugeMetricFamily(
                p + "box_lots", "Lots each box is on whose profile its alarms apply", labels=["box"]
            )
            for b in s["boxes"]:
                lots.add_metric([b["device_id"]], len(b["lots"]))
            yield lots
            yield GaugeMetricFamily(
                p + "lots_current",
                "1 if the cloud answered the last ask for the boxes' lots, 0 if it did not",
                value=int(s["lots_follow"]["state"] == "current"),
            )
        if s["ack_relay"] is not None:
            relayed = CounterMetricFamily(
                p + "relayed_acks", "Alarm acks relayed by the cloud, by result", labels=["result"]
            )
            relayed.add_metric(["acknowledged"], s["ack_relay"]["applied"])
            for reason, count in s["ack_relay"]["refused"].items():
                relayed.add_metric([reason], count)
            yield relayed


def _notify_metrics(n: dict[str, Any]) -> Iterator[Metric]:
    """Alarm notification: deliveries by target and outcome, acks, what is still pending."""
    p = "pharmasync_gateway_"
    sent = CounterMetricFamily(
        p + "notifications", "Alarm notices, by target and result", labels=["target", "result"]
    )
    for result in ("sent", "failed", "gave_up"):
        for target, count in n[result].items():
            sent.add_metric([target, result], count)
    yield sent
    yield GaugeMetricFamily(
        p + "notifications_pending", "Deliveries waiting (due or retrying)", value=n["pending"]
    )
    escalating = sum(a["escalating"] for a in n["alarms"])
    yield GaugeMetricFamily(
        p + "alarms_escalating", "Alarms neither acknowledged nor cleared", value=escalating
    )
    acks = CounterMetricFamily(p + "alarm_acks", "Alarm acknowledgements applied", labels=["via"])
    for via, count in n["acks"].items():
        acks.add_metric([via], count)
    yield acks
    refused = CounterMetricFamily(
        p + "alarm_acks_refused", "Alarm acknowledgements refused, by reason", labels=["reason"]
    )
    for reason, count in n["refused_acks"].items():
        refused.add_metric([reason], count)
    yield refused


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


# HTTP status of each refusal of an acknowledgement (AckResult.reason)
ACK_STATUS = {
    "malformed": 400,
    "bad signature": 403,
    "wrong gateway": 403,
    "unauthorised key": 403,
    "bad token": 403,
    "ack off": 403,
    "dated in the future": 400,
    "unknown alarm": 404,
    "replayed": 409,
    "already acknowledged": 409,
}
MAX_ACK_BODY = 4096


def _problem(result: AckResult) -> web.Response:
    return problem(ACK_STATUS.get(result.reason, 400), result.reason, result.detail)


def problem(status: int, reason: str, detail: str) -> web.Response:
    """An application/problem+json answer (RFC 9457) with the counted `reason`."""
    body = {"type": "about:blank", "title": reason, "status": status, "reason": reason}
    return web.json_response(
        body | {"detail": detail}, status=status, content_type="application/problem+json"
    )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own HTTP errors (404, 405, 413) as problem+json too: one shape for every
    refusal. Redirects pass."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        answer = problem(e.status, e.reason.lower(), e.text or e.reason)
        if "Allow" in e.headers:
            answer.headers["Allow"] = e.headers["Allow"]
        return answer


def _answer(result: AckResult, form: bool) -> web.Response:
    if not result.ok:
        return _problem(result)
    if form:  # the page's own form: back to the page, which now shows who acknowledged
        raise web.HTTPSeeOther("/")
    return web.json_response({"ok": True, "alarm": result.alarm, "detail": result.detail})


async def handle_ack(request: web.Request) -> web.Response:
    """POST /alarms/{id}/ack: a person at the site acknowledges, with the ack token."""
    esc = request.app[RUNTIME].escalation
    if esc is None or not esc.config.ack_token:
        off = AckResult(False, "ack off", None, "set [notify] ack_token to acknowledge here")
        return _problem(off)
    form = request.content_type != "application/json"
    try:
        if (request.content_length or 0) > MAX_ACK_BODY:
            raise ValueError(f"body over {MAX_ACK_BODY} bytes")
        data = dict(await request.post()) if form else json.loads(await request.read())
        if not isinstance(data, dict):
            raise ValueError("want a JSON object")
        by, token = alarm_ack.check_by(data.get("by")), data.get("token")
        if not isinstance(token, str):
            raise ValueError(f'want "token" (text), got {type(token).__name__}')
    except alarm_ack.AckError as e:
        return _problem(AckResult(False, e.reason, None, e.detail))
    except (ValueError, RecursionError) as e:
        return _problem(AckResult(False, "malformed", None, str(e)))
    given = token.encode("utf-8", "surrogatepass")  # a lone surrogate is just a wrong token
    if not hmac.compare_digest(given, esc.config.ack_token.encode()):
        esc.refused["bad token"] += 1
        return _problem(AckResult(False, "bad token", None, "the ack token does not match"))
    return _answer(esc.ack(request.match_info["id"], by.strip(), "status page"), form)


async def handle_signed_ack(request: web.Request) -> web.Response:
    """POST /alarms/ack-signed: the body is a signed acknowledgement (its own authority)."""
    esc = request.app[RUNTIME].escalation
    if esc is None:
        return _problem(AckResult(False, "ack off", None, "alarm notification is not running"))
    if (request.content_length or 0) > MAX_ACK_BODY:
        return _problem(AckResult(False, "malformed", None, f"body over {MAX_ACK_BODY} bytes"))
    return _answer(esc.apply_signed_ack(await request.read()), form=False)


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
        on = [b["lot"]] if b["lot"] else []
        on += b.get("lots", []) + [
            f"{name} (conflicts: not applied)" for name in b.get("lot_conflicts", [])
        ]
        rows.append(
            f"<tr{warn}><td><b>{e(b['label'] or b['device_id'])}</b><br><small>{b['device_id']}"
            f"</small></td><td>{e(b['zone'] or '—')}</td><td>{e(', '.join(on) or '—')}</td>"
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
            + (
                f"; cosigned receipts: {up['cosigned']} kept, {up['uncosigned']} waiting"
                + (f", {up['cosigned_refused']} refused" if up["cosigned_refused"] else "")
                if up["cosignatures"]
                else ""
            )
            + (f" — last error: {e(up['last_error'])}" if up["last_error"] else "")
        )
    )
    notices = "" if s["notify"] is None else _render_notify(s["notify"], s["boxes"], now)
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
</div>{full}{notices}
<h2>Boxes</h2>
<table><tr><th>Box</th><th>Zone</th><th>Lot</th><th>Temperature</th><th>Humidity</th>
<th>Last reading</th><th>Acked seq</th><th>Flags</th><th>Rejected</th></tr>
{body}
</table></body></html>
"""


def _render_notify(n: dict[str, Any], boxes: list[dict[str, Any]], now: float) -> str:
    """The "Notifications" section: each alarm's escalation, who was told, who acknowledged,
    and (with [notify] ack_token set) a form to acknowledge it."""
    e = html.escape
    labels = {b["device_id"]: b["label"] or b["device_id"] for b in boxes}
    rows = []
    for a in n["alarms"]:
        failing = [d for d in a["deliveries"] if d["state"] == "pending" and d["attempts"]]
        state = "<b class=alarm>escalating</b>" if a["escalating"] else e(a["state"])
        sent = e(", ".join(a["told"])) or "nobody yet"
        fails = "".join(
            f"<br><small class=alarm>{e(d['target'])}: {d['attempts']} failed attempts — "
            f"{e(d['last_error'] or '')}</small>"
            for d in failing
        )
        form = ""
        if n["ack_on_page"] and a["acked_at"] is None:
            form = (
                f"<form method=post action='/alarms/{e(a['id'])}/ack'>"
                "<input name=by placeholder='your name' required maxlength=100> "
                "<input name=token type=password placeholder='ack token' required> "
                "<button>Acknowledge</button></form>"
            )
        rows.append(
            f"<tr><td><code>{e(a['id'])}</code></td><td>{e(labels.get(a['zone'], a['zone']))}</td>"
            f"<td>{e(a['kind'])}</td><td>{_ago(now, a['raised_at'])}</td><td>{state}</td>"
            f"<td>{sent}{fails}</td><td>{form}</td></tr>"
        )
    refused = ", ".join(f"{k}: {v}" for k, v in n["refused_acks"].items()) or "none"
    table = "".join(rows) or "<tr><td colspan=7>No alarms yet.</td></tr>"
    return f"""
<h2>Notifications</h2>
<p>{n["levels"]} escalation levels; {n["pending"]} deliveries waiting; acknowledgements refused:
{e(refused)}. Acknowledge with <code>pharmasync gateway alarms ack ID --by NAME</code>.</p>
<table><tr><th>Alarm</th><th>Box</th><th>Kind</th><th>Raised</th><th>State</th>
<th>Told</th><th></th></tr>{table}</table>"""


def make_app(rt: Runtime) -> web.Application:
    """The status application for a running gateway."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[problems])  # no large bodies
    app[RUNTIME] = rt
    app.router.add_get("/", handle_page)
    app.router.add_get("/status.json", handle_json)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_post("/alarms/ack-signed", handle_signed_ack)
    app.router.add_post("/alarms/{id}/ack", handle_ack)
    return app
