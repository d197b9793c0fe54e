"""The gateway's status page, JSON and Prometheus metrics, from a running gateway fed by
simulated boxes through a real Mosquitto; the page is rendered by real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from device import simulate
from gateway import app, settings
from gateway.registry import Box, Registry
from tests.conftest import Mosquitto, free_port, need_or_skip
from tests.device.receiver import OWNER, certify_gateway

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def test_status_json_metrics_and_page(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    sim = simulate.SimSettings(
        broker_port=mosquitto.port,
        site="st",
        boxes=2,
        interval_s=0.01,
        data_dir=tmp_path / "boxes",
        readings=20,
        profiles=("coldroom", "failing"),
        failure_after_min=0,
        owner_key=OWNER,
    )
    boxes = [simulate.make_box(sim, i) for i in range(2)]
    (tmp_path / "gw").mkdir()
    reg = Registry(tmp_path / "gw" / "registry.json")
    for i, b in enumerate(boxes):
        profile = "tight" if i == 0 else "default"  # room A's profile trips at 5 C
        reg.put(
            Box(
                b.key, f"Cold room {'AB'[i]}", "st", zone=f"room-{i}", lot="LOT-42", profile=profile
            )
        )
    reg.close()
    s = settings.from_dict(
        {
            "gateway": {
                "site": "st",
                "data_dir": str(tmp_path / "gw"),
                "certificate": str(certify_gateway(tmp_path / "gw", "st")),
            },
            "mqtt": {"port": mosquitto.port},
            "status": {"port": port},
            "alarms": {"tight": {"high_c": 4.0, "delay_consecutive_s": 0, "hysteresis_c": 0.2}},
        }
    )
    stop = asyncio.Event()
    gw = asyncio.create_task(app.serve(s, stop))
    await asyncio.sleep(0.3)
    await asyncio.wait_for(simulate.simulate(sim, lambda _: None), 60)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            # a forged message on the site's topic, to see it counted
            import aiomqtt

            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                await c.publish(f"pharmasync/v1/st/{boxes[0].id}/reading", b"\x01" * 110, 1)
            await asyncio.sleep(0.3)
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                await c.subscribe("pharmasync/v1/st/alarms", 1)
                retained = await asyncio.wait_for(anext(aiter(c.messages)), 5)
            snap = await (await http.get(base + "/status.json")).json()
            metrics_text = await (await http.get(base + "/metrics")).text()
            page = await (await http.get(base + "/")).text()
            dom, png = await render_in_chromium(base + "/", tmp_path)
    finally:
        stop.set()
        await gw
    assert snap["site"] == "st" and snap["counts"]["accepted"] == 40
    assert snap["mqtt"]["state"] == "connected" and snap["uplink"] is None
    by_label = {b["label"]: b for b in snap["boxes"]}
    assert by_label["Cold room A"]["acked_seq"] == 19
    assert 2 <= by_label["Cold room A"]["temperature_c"] <= 8
    assert sum(snap["counts"].values()) == 41  # 40 accepted, 1 rejected
    metrics = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }
    assert metrics[("pharmasync_gateway_readings_total", (("result", "accepted"),))] == 40
    rejected = [
        v for (name, _), v in metrics.items() if name == "pharmasync_gateway_rejected_total"
    ]
    assert rejected == [1]
    assert metrics[("pharmasync_gateway_mqtt_connected", ())] == 1
    box_a = by_label["Cold room A"]["device_id"]
    assert metrics[("pharmasync_gateway_box_acked_seq", (("box", box_a),))] == 19
    assert "Cold room A" in page and "LOT-42" in page
    # Room A's tight profile raised "high" at once: everywhere staff and scripts look.
    assert [(a["label"], a["kind"]) for a in snap["alarms"]] == [("Cold room A", "high")]
    assert metrics[("pharmasync_gateway_alarm_active", (("kind", "high"), ("zone", box_a)))] == 1
    state = json.loads(retained.payload)
    assert retained.retain and [a["kind"] for a in state["active"]] == ["high"]
    assert "Cold room A</b> (room-0): high" in page
    assert "Cold room B" in dom and "°C" in dom
    assert png.stat().st_size > 10_000


async def render_in_chromium(url: str, tmp: Path) -> tuple[str, Path]:
    """Return (rendered DOM, screenshot path) of `url` in headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        need_or_skip("chromium not installed (Debian: apt-get install chromium)")
    png = tmp / "status.png"
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chrome'}"]
    dom = await asyncio.to_thread(
        subprocess.run, [*common, "--dump-dom", url], capture_output=True, text=True, timeout=60
    )
    await asyncio.to_thread(
        subprocess.run,
        [*common, f"--screenshot={png}", "--window-size=1280,800", url],
        capture_output=True,
        timeout=60,
    )
    return dom.stdout, png
