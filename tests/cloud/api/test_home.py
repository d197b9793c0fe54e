"""The landing page at `/` (cloud/api/routes/home.py), as a newcomer's browser shows it: headless
Chromium renders the page of a running ledger, on a desktop and on a phone-sized screen."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from cloud.settings import CloudSettings
from device import schnorr
from gateway import registry_change as registry
from gateway.checkpoint import open_checkpoint
from gateway.note import Verifier
from tests.conftest import need_or_skip
from tests.gateway.test_status import CHROMIUM_FLAGS, render_in_chromium

OWNER = b"\x07" * 32


async def test_the_landing_page_shows_the_log_and_links_to_the_api(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path / "cloud", owners=(schnorr.pubkey(OWNER),))
    async with TestServer(make_app(settings), host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(base) as http:
            change = registry.BoxRegistration(b"\x11" * 32, int(time.time()), site="w1", label="A")
            async with http.post("/v1/registry", json=registry.sign_request(OWNER, change)) as r:
                assert r.status == 201  # one entry in the log, after the owners' bootstrap
            async with http.get("/v1/log/vkey") as r:
                vkey = (await r.text()).strip()
            async with http.get("/") as r:
                assert r.status == 200 and r.content_type == "text/html"
            cp = open_checkpoint(
                await (await http.get("/v1/checkpoint")).text(), Verifier.parse(vkey)
            )
            dom, png = await render_in_chromium(base + "/", tmp_path)
            phone = await render_phone(base + "/", tmp_path)
            for path in ("/v1/checkpoint", "/v1/openapi.json", "/metrics", "/v1/devices"):
                assert f'href="{path}"' in dom
                async with http.get(path) as r:
                    assert r.status == 200, path  # every link leads somewhere
    assert "PharmaSync ledger" in dom and cp.size == 2
    assert '<dd id="log-size">2</dd>' in dom
    assert cp.root_hash.hex() in dom and vkey in dom
    assert f"{cp.origin}\n2\n" in dom  # the signed checkpoint note itself
    assert png.stat().st_size > 10_000 and phone.stat().st_size > 10_000


async def render_phone(url: str, tmp: Path) -> Path:
    """Screenshot `url` at a phone's size (390 x 844 CSS pixels)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        need_or_skip("chromium not installed (Debian: apt-get install chromium)")
    png = tmp / "phone.png"
    await asyncio.to_thread(
        subprocess.run,
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chrome-phone'}",
         f"--screenshot={png}", "--window-size=390,844", url],
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return png
