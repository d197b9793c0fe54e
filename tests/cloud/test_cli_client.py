"""The commands' HTTP client (cloud/cli_client.py) against servers that misbehave: a
problem document, a body that is not JSON, one larger than any answer, a refused
connection, a server that never answers. Each is one line on stderr and exit 1, never a
traceback; real servers on loopback."""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web

from cloud import cli_client
from cloud.commands import post_json
from gateway import jsonbound

Handler = Callable[[web.Request], Any]


@contextmanager
def serving(handler: Handler) -> Iterator[str]:
    """Serve `handler` for every path on a loopback port, in a thread with its own loop (the
    client's functions run their own asyncio.run)."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def read(url: str) -> int:
    return cli_client.read_as(argparse.Namespace(cloud=url, key=None, json=False), "/v1/x")  # type: ignore[return-value]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_problem_document_is_one_line_even_if_its_detail_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ledger's reason and detail printed on one line, a hostile server's newlines and
    terminal escapes shown escaped, a long detail cut."""

    async def problem(_r: web.Request) -> web.Response:
        body = {"reason": "bad\nfield", "detail": "\x1b[2Jgone " + "x" * 5000}
        return web.json_response(body, status=422, content_type="application/problem+json")

    with serving(problem) as url:
        status, answer = cli_client.read_as(argparse.Namespace(cloud=url, key=None), "/v1/x")  # type: ignore[misc]
    assert cli_client.refused(status, answer) == 1
    err = one_line(capsys)
    assert err.startswith("error: HTTP 422: bad\\nfield: \\x1b[2Jgone xxx") and "\x1b" not in err
    assert len(err) < 600


def test_a_body_that_is_not_json_names_the_http_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def proxy_error(_r: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    with serving(proxy_error) as url:
        assert read(url) == 1
    assert "HTTP 502" in one_line(capsys)


def endless_body(sent: list[int], limit: int) -> Handler:
    """A handler answering blanks until `limit` bytes are sent, counting them in `sent`."""
    chunk = b" " * (1 << 20)

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        try:
            while sent[0] < limit:
                await resp.write(chunk)
                sent[0] += len(chunk)
        except ConnectionError:
            pass
        return resp

    return endless


def test_a_body_larger_than_any_answer_is_not_read_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An endless body: refused once MAX_ANSWER bytes are over, without reading on."""
    sent = [0]
    with serving(endless_body(sent, 4 * cli_client.MAX_ANSWER)) as url:
        assert read(url) == 1
    assert f"more than {cli_client.MAX_ANSWER} bytes" in one_line(capsys)
    assert sent[0] < 2 * cli_client.MAX_ANSWER


def test_a_refused_connection_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        assert read(f"http://127.0.0.1:{port}") == 1
    assert "error: http://127.0.0.1" in one_line(capsys)


def test_a_server_that_never_answers_times_out_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_client, "TIMEOUT_S", 0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # accepted by the kernel, never answered
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert read(url) == 1
        args = argparse.Namespace(cloud=url, key=None)
        assert cli_client.read_as(args, "/v1/y") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("no answer within 0.5 s") == 2, err


def test_a_posted_transactions_answer_is_not_read_whole() -> None:
    """send_tx's POST (commands.post_json) reads at most its 64 KiB bound too."""
    sent = [0]
    with (
        serving(endless_body(sent, 256 << 20)) as url,
        pytest.raises(jsonbound.JsonError, match="more than 65536 bytes"),
    ):
        asyncio.run(post_json(url + "/v1/tx", {}))
    assert sent[0] < 64 << 20
