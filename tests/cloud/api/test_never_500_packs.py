"""No input to issue 12's routes and transactions yields a 500 (as tests/cloud/api/
test_never_500.py for the rest): hypothesis sends the pack transactions (serialize, split,
decommission, undo, suspect), stock-minimum and a bare statement signed by each role, the
counter's check (POST /v1/packs/verify) with each reader's token, SimpleEventQuery
parameters to GET /epcis/events, partners' documents with signed statements to POST
/epcis/capture, Digital Link paths, queries and Accept headers to the resolver, and the
stock reads' parameters; every answer must be a success or a 4xx problem+json.

The app runs for real (tests/cloud/served.py) on SQLite and on PostgreSQL, seeded with
tests/cloud/api/test_packs.py's chain (a serialized lot, units at two pharmacies), so the
values reach the rules and the reads with something to find.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.app import make_app
from cloud.contracts import auth, tx
from device import schnorr
from tests.cloud.api.test_never_500 import (
    SETTINGS,
    anything,
    check,
    integers,
    json_values,
    module_settings,
    texts,
    texts_in_json,
)
from tests.cloud.api.test_packs import SERIALS, chain_steps
from tests.cloud.conftest import ENGINES
from tests.cloud.contracts.world import GTIN, REGULATOR, Party, party
from tests.cloud.served import Served, encode

M, R, P = party("M"), party("R"), party("P")
READERS = {"M": M, "P": P, "regulator": REGULATOR}


def token(served: Served, who: Party) -> str:
    """Sign `who` in (docs/contracts.md §3) and return its bearer token."""
    json_type = {"Content-Type": "application/json"}
    issued = served.request("POST", "/v1/auth/challenge", b"", json_type)
    found = bytes.fromhex(json.loads(issued.body)["challenge"])
    sig = schnorr.sign(who.secret, auth.digest(found, who.did))
    body = {"did": who.did, "challenge": found.hex(), "sig": sig.hex()}
    answer = served.request("POST", "/v1/auth/token", json.dumps(body).encode(), json_type)
    assert answer.status == 201, answer
    return str(json.loads(answer.body)["token"])


@pytest.fixture(scope="module", params=ENGINES)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, dict[str, str]]]:
    """The cloud on a real port with the packs chain applied, and a token per reader."""
    with Served(make_app(module_settings(request, tmp_path_factory))) as served:
        for step in chain_steps():
            answer = served.request("POST", "/v1/tx", step.to_wire())
            assert answer.status == 201, answer
        yield served, {name: token(served, who) for name, who in READERS.items()}


def bearer(tokens: dict[str, str], who: str | None) -> dict[str, str]:
    return {} if who is None else {"Authorization": f"Bearer {tokens[who]}"}


serials = st.sampled_from([*SERIALS[:20], "NOPE", "", "x" * 21, "a b", "\uff30K1"]) | texts_in_json
gtins = st.sampled_from([GTIN, GTIN[1:], "09506000134353", "12345670", "0" * 14]) | texts_in_json
lots = st.sampled_from(["L1", "L2", "A/B", "..", "%2F"]) | texts_in_json
ARGS = {
    "gtin": gtins,
    "lot": lots,
    "serial": serials,
    "serials": st.lists(serials, max_size=5)
    | st.dictionaries(lots, st.lists(serials, max_size=3), max_size=3)
    | anything,
    "status": st.sampled_from(["dispensed", "destroyed", "stolen", "sample", "active"]) | anything,
    "reason": st.sampled_from(["unknown", "mismatch", "decommissioned", "other"]) | anything,
    "place": texts_in_json | anything,
    "expiry": st.sampled_from(["271200", "270230", "000000", "991231"]) | texts_in_json | anything,
    "minimum": integers | anything,
    "children": st.lists(st.fixed_dictionaries({"lot": lots, "quantity": integers}), max_size=3)
    | anything,
    "document": st.just("00" * 32) | texts_in_json,
    "events": integers | anything,
    "quantity": integers | anything,
}
TYPES = ["serialize", "split", "decommission", "undo", "suspect", "stock-minimum", "statement"]


@st.composite
def pack_transactions(draw: st.DrawFn) -> bytes:
    """A lots transaction of issue 12's types with any of their arguments' values, signed
    now by a manufacturer, a retailer, a pharmacy or the regulator (a body that cannot be
    signed, a float in it, goes out as an empty object)."""
    names = draw(st.lists(st.sampled_from(sorted(ARGS)), max_size=6, unique=True))
    args = {name: draw(ARGS[name], label=name) for name in names}
    who = draw(st.sampled_from([M, R, P, REGULATOR]))
    try:
        return tx.make("lots", draw(st.sampled_from(TYPES)), args, who.secret).to_wire()
    except (tx.TxError, ValueError):
        return b"{}"


@given(pack_transactions())
@SETTINGS
def test_any_pack_transaction_is_answered_without_a_500(seeded: Any, data: bytes) -> None:
    served, _ = seeded
    check(served.request("POST", "/v1/tx", data, {"Content-Type": "application/json"}))


scan_bodies = (
    st.dictionaries(
        st.sampled_from(["gtin", "serial", "lot", "expiry", "scan", "x"]),
        gtins | serials | lots | anything | json_values,
        max_size=5,
    )
    | json_values
)


@given(scan_bodies, st.sampled_from(sorted(READERS)))
@SETTINGS
def test_any_counter_check_is_answered_without_a_500(seeded: Any, body: Any, who: str) -> None:
    served, tokens = seeded
    headers = {**bearer(tokens, who), "Content-Type": "application/json"}
    check(served.request("POST", "/v1/packs/verify", json.dumps(body).encode(), headers))


QUERY = ["eventType", "EQ_bizStep", "EQ_disposition", "EQ_bizLocation", "MATCH_epc"]
QUERY += ["MATCH_anyEPC", "MATCH_epcClass", "GE_eventTime", "LT_eventTime", "perPage"]
QUERY += ["nextPageToken"]
query_values = (
    st.sampled_from(
        [
            f"https://id.gs1.org/01/{GTIN}/10/L1",
            f"https://id.gs1.org/01/{GTIN}/21/PK00001",
            "urn:epc:id:sgtin:0614141.107346.2017",
            "ObjectEvent|TransformationEvent",
            "shipping",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+25:00",
            "9999-12-31T23:59:59.999999+00:00",
            "0001-01-01T00:00:00-23:59",
            "1000",
        ]
    )
    | texts
)


@given(
    st.lists(st.tuples(st.sampled_from(QUERY), query_values), max_size=4),
    st.sampled_from([None, *sorted(READERS)]),
)
@SETTINGS
def test_any_epcis_query_is_answered_without_a_500(
    seeded: Any, query: list[tuple[str, Any]], who: str | None
) -> None:
    served, tokens = seeded
    target = "/epcis/events?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
    check(served.request("GET", target, None, bearer(tokens, who)))


shipments = st.sampled_from(["S3", "S4", "%FF", "\x00"]).map("urn:pharmasync:shipment:".__add__)
event_fields = {
    "type": st.sampled_from(["ObjectEvent", "AggregationEvent"]) | json_values,
    "bizStep": st.sampled_from(["shipping", "receiving"]) | json_values,
    "eventTime": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"])
    | json_values,
    "eventID": json_values,
    "bizTransactionList": st.lists(
        st.fixed_dictionaries({"bizTransaction": shipments | json_values}), max_size=2
    )
    | json_values,
    "quantityList": st.lists(
        st.fixed_dictionaries(
            {"epcClass": query_values | json_values, "quantity": integers | json_values}
        ),
        max_size=2,
    )
    | json_values,
    "sourceList": st.lists(
        st.fixed_dictionaries({"source": st.sampled_from([R.did, P.did]) | json_values}),
        max_size=2,
    )
    | json_values,
}
captured_events = st.fixed_dictionaries({}, optional=event_fields)


@given(
    st.lists(captured_events, min_size=1, max_size=3) | json_values,
    st.sampled_from([P, R, M]),
    st.booleans(),
    st.none() | integers,
)
@SETTINGS
def test_any_capture_is_answered_without_a_500(
    seeded: Any, found: Any, who: Party, wrapped: bool, count: int | None
) -> None:
    served, _ = seeded
    document = {"type": "EPCISDocument", "epcisBody": {"eventList": found}} if wrapped else found
    try:
        body = json.dumps(document).encode()
    except TypeError:  # bytes drawn where JSON has none
        return
    counted = count if count is not None else (len(found) if isinstance(found, list) else 1)
    stated = {"gtin": GTIN, "lot": "L1", "document": hashlib.sha256(body).hexdigest()}
    try:
        envelope = tx.make("lots", "statement", {**stated, "events": counted}, who.secret)
    except (tx.TxError, ValueError):
        return
    header = base64.urlsafe_b64encode(envelope.to_wire()).decode().rstrip("=")
    headers = {"PharmaSync-Statement": header, "Content-Type": "application/ld+json"}
    check(served.request("POST", "/epcis/capture", body, headers))


ACCEPT = ["application/json", "text/html", "application/linkset+json", "*/*;q=0", "x"]
ACCEPT += ["application/vnd.pharmasync.public-proof", "text/*;q=1e999", "*/*;q=nan"]


@given(
    st.lists(texts | lots | serials | st.sampled_from(["01", "10", "21", "22", GTIN]), max_size=7),
    st.lists(
        st.tuples(
            st.sampled_from(["17", "linkType", "x"]),
            texts | st.sampled_from(["all", "gs1:pip", "271200", "270230"]),
        ),
        max_size=3,
    ),
    st.sampled_from(ACCEPT),
)
@SETTINGS
def test_any_digital_link_is_answered_without_a_500(
    seeded: Any, parts: list[Any], query: list[tuple[str, Any]], accept: str
) -> None:
    served, _ = seeded
    path = f"/01/{GTIN}/" + "/".join(encode(p) for p in parts)
    if query:
        path += "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
    check(served.request("GET", path, None, {"Accept": accept}))


@given(
    st.sampled_from(["/v1/stock", f"/v1/stock/{GTIN}", "/v1/stock/12345670"]),
    st.lists(st.tuples(st.sampled_from(["after", "limit"]), texts), max_size=3),
    st.sampled_from([None, *sorted(READERS)]),
)
@SETTINGS
def test_any_stock_read_is_answered_without_a_500(
    seeded: Any, path: str, query: list[tuple[str, Any]], who: str | None
) -> None:
    served, tokens = seeded
    if query:
        path += "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
    check(served.request("GET", path, None, bearer(tokens, who)))
