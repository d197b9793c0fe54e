"""cloud.audit.log_client against a server that answers anything (issue 10, section 1): a body of
any bytes, deep nesting, huge numbers, an oversized answer or error body — the client
raises FetchError (ProtocolError for a malformed answer), never anything else, and reads
no more than its limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.audit import log_client
from cloud.audit.log_client import FetchError, LogClient, ProtocolError
from tests.cloud.served import Served

ANSWER = web.AppKey("answer", dict)


async def answer(request: web.Request) -> web.Response:
    """Answer whatever the test put in the app's ANSWER for this request."""
    a = request.app[ANSWER]
    return web.Response(status=a["status"], body=a["body"], content_type=a["content_type"])


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    app = web.Application()
    app[ANSWER] = {"status": 200, "body": b"", "content_type": "application/json"}
    app.router.add_get("/{tail:.*}", answer)
    with Served(app) as served:
        yield served


def call(served: Served, method: str, **answered: Any) -> Any:
    served.app[ANSWER].update(answered)

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            client = LogClient(session, f"http://127.0.0.1:{served.port}", retries=0)
            return await {
                "vkey": client.vkey,
                "checkpoint": client.checkpoint,
                "entries": lambda: client.entries(0, 10),
                "consistency": lambda: client.consistency(1, 2),
                "readings": lambda: client.batch_readings(3),
            }[method]()

    return asyncio.run(run())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["start", "entries", "old", "new", "proof", "x"]), children, max_size=4
        )
    ),
    max_leaves=12,
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 50_000).map(lambda n: b"[" * n)
    | st.sampled_from([b"1" * 5000, b'{"start": 0, "entries": ["' + b"ab" * 10 + b'"] * 3}'])
)


@given(
    method=st.sampled_from(["vkey", "checkpoint", "entries", "consistency", "readings"]),
    status=st.sampled_from([200, 200, 400, 404, 409]),
    body=bodies,
    content_type=st.sampled_from(["application/json", "application/problem+json", "text/plain"]),
)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_any_answer_is_a_value_or_a_fetch_error(
    server: Served, method: str, status: int, body: bytes, content_type: str
) -> None:
    try:
        call(server, method, status=status, body=body, content_type=content_type)
    except FetchError as e:
        assert str(e) and "\n" not in str(e)[:200]


def test_deep_json_is_a_protocol_error_naming_the_limit(server: Served) -> None:
    with pytest.raises(ProtocolError, match="got nesting deeper than 16, want at most 16"):
        call(server, "entries", status=200, body=b"[" * 100_000, content_type="application/json")


def test_a_deep_problem_body_is_shown_as_text_not_parsed(server: Served) -> None:
    with pytest.raises(FetchError, match=r"HTTP 404: \[\[\[") as e:
        call(
            server,
            "entries",
            status=404,
            body=b"[" * 100_000,
            content_type="application/problem+json",
        )
    assert not isinstance(e.value, ProtocolError)


def test_an_answer_over_the_limit_is_refused(
    server: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_client, "MAX_ANSWER_BYTES", 1000)
    with pytest.raises(ProtocolError, match="got 1001 bytes, want at most 1000"):
        call(
            server,
            "readings",
            status=200,
            body=bytes(1001),
            content_type="application/octet-stream",
        )
    assert call(server, "readings", status=200, body=bytes(1000)) == bytes(1000)
