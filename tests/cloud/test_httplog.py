"""The cloud's access log (cloud/httplog.py AccessLog), through real HTTP: one short line per
request with its status, size and time, and none for a transaction the contract service
accepted (201 to POST /v1/tx: that service logs it with its id and log index); a refused
transaction is logged like any other request."""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud.httplog import AccessLog


async def test_one_line_per_request_but_none_for_an_accepted_transaction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def tx(request: web.Request) -> web.Response:
        ok = (await request.read()) == b"good"
        return web.json_response({}, status=201 if ok else 400)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="twelve bytes")

    app = web.Application()
    app.router.add_post("/v1/tx", tx)
    app.router.add_get("/v1/page", page)
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLog)
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        async with aiohttp.ClientSession() as http:
            for body in (b"good", b"bad", b"good"):
                async with http.post(server.make_url("/v1/tx"), data=body) as r:
                    await r.read()
            async with http.get(server.make_url("/v1/page?x=1")) as r:
                await r.read()
    finally:
        await server.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == 2, lines
    assert re.fullmatch(r'127\.0\.0\.1 "POST /v1/tx" 400 \d+ \d+\.\d ms', lines[0]), lines
    assert re.fullmatch(r'127\.0\.0\.1 "GET /v1/page\?x=1" 200 \d+ \d+\.\d ms', lines[1])


async def test_nothing_is_formatted_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiohttp.access")
    assert not AccessLog(logging.getLogger("aiohttp.access"), "").enabled
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    assert AccessLog(logging.getLogger("aiohttp.access"), "").enabled
