"""No input yields a 500 from the gateway's status page (issue 10, section 1): hypothesis
sends every route of the status app (read from its router: a route added later is covered
at once) arbitrary paths, queries, methods, headers and bodies — deep JSON, huge numbers,
non-UTF-8, lone surrogates, wrong content types, oversized bodies, signed acks with any
field values — and every answer must be a success or a 4xx.

The app runs for real on a port (tests/cloud/served.py) over a real gateway with alarm
escalation running (tests/gateway/test_escalation.py's site), with one alarm raised, so the
ack routes reach the database with what they were given.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import schnorr
from gateway import alarm_ack, status
from tests.cloud.api.test_never_500 import deep, json_values  # the same hostile JSON
from tests.cloud.served import Answer, Served, encode
from tests.gateway.test_escalation import GATEWAY_SECRET, OWNER_SECRET, TOKEN, Site, running_site

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GATEWAY_KEY = schnorr.pubkey(GATEWAY_SECRET)
JSON = {"Content-Type": "application/json"}


class SiteServed(Served):
    """A running site (gateway + escalation, one alarm raised) and its status app, served
    from the loop thread of Served."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(web.Application())  # replaced in _start, once the site runs
        self.tmp = tmp
        self.context: AbstractAsyncContextManager[Site] | None = None
        self.alarm = ""

    async def _start(self) -> None:
        self.context = running_site(self.tmp)
        site = await self.context.__aenter__()
        await site.feed(5.0, 12.0)  # over 8 °C: an alarm is raised
        self.alarm = site.alarm_id()
        rt = status.Runtime(site.gw, escalation=site.esc)
        self.runner = web.AppRunner(status.make_app(rt), access_log=None)
        await super()._start()

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.context is not None:
            self.run(self.context.__aexit__(None, None, None))
        super().__exit__(kind, e, tb)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteServed]:
    with SiteServed(tmp_path_factory.mktemp("gw")) as served:
        yield served


def route_templates() -> list[str]:
    """The path template of every route of the status app, as its router lists them."""
    found = set()
    for route in status.make_app(status.Runtime(None)).router.routes():  # type: ignore[arg-type]
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template:
            found.add(template)
    return sorted(found)


TEMPLATES = route_templates()


def check(answer: Answer) -> None:
    """A success (or the form's redirect), or a 4xx problem+json: never a 5xx."""
    assert answer.status < 500, answer
    if answer.status >= 400:
        answer.problem()


def test_every_route_is_exercised() -> None:
    assert {"/", "/status.json", "/metrics", "/alarms/ack-signed", "/alarms/{id}/ack"} <= set(
        TEMPLATES
    )


# -- strategies ----------------------------------------------------------------------------

integers = st.sampled_from([0, -1, 2**40, 2**63, 2**64, 10**19]) | st.integers()
texts = (
    st.text(max_size=30)
    | st.sampled_from(["", " ", "\x00", "\ud800", "a\udcffb", "x" * 101, "\u200d"])
    | integers.map(str)
)
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain; charset=latin-1",
    "application/json; charset=utf-16",
    "",
]


def dumps(value: Any) -> bytes:
    """JSON as a client might send it: lone surrogates as their \\u escapes."""
    return json.dumps(value).encode()


@st.composite
def signed_acks(draw: st.DrawFn, page_alarm: str) -> bytes:
    """An ack signed by the authorised key (or another) with any field values: it passes
    the signature check whenever the fields make an AlarmAck, and goes on to the database."""
    now = int(time.time())
    fields: dict[str, Any] = {
        "alarm": draw(st.sampled_from([page_alarm, "00000000"]) | texts | json_values),
        "at": draw(st.just(now) | integers | json_values),
        "by": draw(texts | json_values),
        "gateway": draw(st.sampled_from([GATEWAY_KEY.hex(), "00" * 32]) | texts, label="gateway"),
        "v": draw(st.sampled_from([1, 1, True, 2, "1"])),
    }
    secret = draw(st.sampled_from([OWNER_SECRET, bytes(31) + b"\x99"]))
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    signature = schnorr.sign(secret, schnorr.tagged_hash(alarm_ack.TAG, canonical))
    wire = {"ack": fields, "key": schnorr.pubkey(secret).hex(), "signature": signature.hex()}
    return dumps(wire)


def bodies(page_alarm: str) -> st.SearchStrategy[bytes]:
    token = st.sampled_from([TOKEN, "", "nope"]) | texts
    form = st.dictionaries(st.sampled_from(["by", "token", "x"]) | texts, texts, max_size=3)
    return (
        st.binary(max_size=300)
        | st.binary(min_size=4097, max_size=70_000)
        | deep
        | json_values.map(dumps)
        | st.fixed_dictionaries({"by": texts | json_values, "token": token}).map(dumps)
        | form.map(lambda f: "&".join(f"{encode(k)}={encode(v)}" for k, v in f.items()).encode())
        | signed_acks(page_alarm)
    )


@st.composite
def requests(draw: st.DrawFn, page_alarm: str) -> tuple[str, str, bytes, dict[str, str]]:
    template = draw(st.sampled_from(TEMPLATES))
    ident = (
        st.sampled_from([page_alarm, page_alarm.upper(), "00000000"])
        | texts
        | st.binary(max_size=12)
    )
    path = re.sub(r"\{id\}", lambda _: encode(draw(ident, label="id")), template)
    query = draw(st.lists(st.tuples(texts, texts), max_size=3))
    if query:
        path += "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]))
    headers = {}
    ctype = draw(st.sampled_from(CONTENT_TYPES))
    if ctype:
        headers["Content-Type"] = ctype
    if draw(st.booleans()):
        headers["Accept"] = draw(st.sampled_from(["*/*", "text/html", "application/json"]))
    return method, path, draw(bodies(page_alarm)), headers


# -- every route, any input ----------------------------------------------------------------


@given(data=st.data())
@SETTINGS
def test_any_request_to_any_route_is_answered_without_a_500(
    page: SiteServed, data: st.DataObject
) -> None:
    method, path, body, headers = data.draw(requests(page.alarm))
    check(page.request(method, path, body, headers))


@given(st.lists(st.text(max_size=12) | st.binary(max_size=12), min_size=1, max_size=5))
@SETTINGS
def test_paths_of_no_route_are_answered_without_a_500(page: SiteServed, parts: list[Any]) -> None:
    check(page.request("GET", "/" + "/".join(encode(p) for p in parts)))


def test_the_pages_still_render_after_all_that(page: SiteServed) -> None:
    for target in ("/", "/status.json", "/metrics"):
        assert page.request("GET", target).status == 200, target


# -- findings ------------------------------------------------------------------------------


def test_a_lone_surrogate_in_by_is_refused_not_stored(page: SiteServed) -> None:
    """SQLite cannot store a lone surrogate: it was a 500 through both ack routes (the
    token's and a validly signed ack's), now refused by alarm_ack.check_by."""
    url = f"/alarms/{page.alarm}/ack"
    for by in ("\ud800", "A. \udcff Jones"):
        answer = page.request("POST", url, dumps({"by": by, "token": TOKEN}), JSON)
        assert (answer.status, answer.problem()["reason"]) == (400, "malformed")
        fields = {"alarm": page.alarm, "at": int(time.time()), "by": by}
        fields |= {"gateway": GATEWAY_KEY.hex(), "v": 1}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        signature = schnorr.sign(OWNER_SECRET, schnorr.tagged_hash(alarm_ack.TAG, canonical))
        wire = {"ack": fields, "key": schnorr.pubkey(OWNER_SECRET).hex()}
        wire["signature"] = signature.hex()
        answer = page.request("POST", "/alarms/ack-signed", dumps(wire), JSON)
        assert (answer.status, answer.problem()["reason"]) == (400, "malformed")


def test_a_lone_surrogate_in_the_token_is_a_wrong_token(page: SiteServed) -> None:
    """Found by the property test: it was a 500 (the token's UTF-8 encoding failed)."""
    body = dumps({"by": "#", "token": "\ud800"})
    answer = page.request("POST", f"/alarms/{page.alarm}/ack", body, JSON)
    assert (answer.status, answer.problem()["reason"]) == (403, "bad token")


def test_the_routers_refusals_are_problems_too(page: SiteServed) -> None:
    assert page.request("GET", "/nowhere").problem()["reason"] == "not found"
    assert page.request("GET", "/alarms/ack-signed").problem()["reason"] == "method not allowed"
    big = page.request("POST", "/alarms/ack-signed", b"x" * 70_000, JSON)  # Content-Length
    assert (big.status, big.problem()["reason"]) == (400, "malformed")
    chunks = (b"x" * 1000 for _ in range(70))  # chunked: read until the app's 64 KiB limit
    big = page.request("POST", "/alarms/ack-signed", chunks, JSON)  # type: ignore[arg-type]
    assert (big.status, big.problem()["reason"]) == (413, "request entity too large")
