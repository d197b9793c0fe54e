"""No input yields a 500 (issue 10, section 1): hypothesis sends every route of the cloud
app arbitrary paths, query values, methods and bodies — huge and negative integers, deep
nesting, percent-encoded non-UTF-8, wrong JSON types, owner-signed registry changes with
any field values — and every answer must be a success or a 4xx problem+json.

The app runs for real (a port, a loop on its own thread: tests/cloud/served.py) on SQLite and
on PostgreSQL, seeded with a gateway, a box, an attachment and two batches, so that the
routes reach their databases with what they were given. The issue's own findings come
first, as regressions with their exact answers.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.api.app import make_app
from cloud.contracts import tx
from cloud.settings import CloudSettings
from cloud.witness.server import make_witness_app
from device import schnorr
from gateway import batch
from gateway import registry_change as registry
from gateway.checkpoint import Checkpoint, sign_checkpoint
from gateway.refusal import INT64_MAX
from gateway.rfc6962 import EMPTY_ROOT
from tests.cloud.api.test_app import OWNER, chain
from tests.cloud.api.test_tx import M, admit, commission
from tests.cloud.conftest import ENGINES, _run_apart, fresh_schema
from tests.cloud.contracts.world import GTIN, REGULATOR, party
from tests.cloud.served import Served, encode
from tests.cloud.services.test_ingest import BOX, GW, body
from tests.cloud.witness.test_witness import IMPOSTOR, LOG, OTHER_LOG, TREE
from tests.cloud.witness.test_witness import KEY as WITNESS_KEY

BOX_KEY = schnorr.pubkey(BOX).hex()
GW_KEY = schnorr.pubkey(GW).hex()
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def signed_request(fields: dict[str, Any], secret: bytes = OWNER) -> bytes:
    """A registry request whose owner signature verifies over `fields` as the cloud
    re-encodes them (canonical JSON), whatever their values."""
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    signature = schnorr.sign(secret, schnorr.tagged_hash(registry.TAG, message))
    request = {
        "change": fields,
        "owner": schnorr.pubkey(secret).hex(),
        "signature": signature.hex(),
    }
    return json.dumps(request).encode()


def module_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> CloudSettings:
    """Settings of a module's cloud on the engine `request.param` names (a fresh schema on
    PostgreSQL), the bootstrap regulator REGULATOR and the registry owner OWNER."""
    database = None
    if request.param == "postgres":
        database = _run_apart(fresh_schema(request.getfixturevalue("postgres_database")))
    return CloudSettings(
        data_dir=tmp_path_factory.mktemp("cloud"),
        database=database,
        owners=(schnorr.pubkey(OWNER),),
        regulators=(REGULATOR.xonly,),
    )


@pytest.fixture(scope="module", params=ENGINES)
def cloud(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The cloud app on a real port, seeded; on each engine."""
    config = module_settings(request, tmp_path_factory)
    with Served(make_app(config)) as served:
        for step in (admit("M"), commission("L1", 10)):  # a participant and a lot
            answer = served.request("POST", "/v1/tx", step.to_wire())
            assert answer.status == 201, answer
        now = int(time.time())
        for fields in (
            {"op": "gateway", "key": GW_KEY, "site": "w1", "time": now},
            {"op": "box", "key": BOX_KEY, "site": "w1", "label": "fridge", "time": now},
            {
                "op": "attach",
                "key": BOX_KEY,
                "subject": "LOT-1",
                "start": now - 60,
                "end": None,
                "time": now,
            },
        ):
            answer = served.request("POST", "/v1/registry", signed_request(fields))
            assert answer.status == 201, answer
        for header, wires in chain(2, 5):
            answer = served.request(
                "POST",
                "/v1/batches",
                body(header, wires),
                {"Content-Type": "application/octet-stream"},
            )
            assert answer.status == 201, answer
        yield served


def route_templates() -> list[str]:
    """The path template of every route the cloud app has, as its router lists them (an
    app is only built here, never started)."""
    app = make_app(CloudSettings(data_dir=Path("never-opened")))
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template:
            found.add(template)
    return sorted(found)


def test_every_route_and_every_path_parameter_is_exercised() -> None:
    assert len(TEMPLATES) >= 16 and "/v1/registry" in TEMPLATES
    used = {name for t in TEMPLATES for name in re.findall(r"\{(\w+)\}", t)}
    assert used <= set(PARAMS), f"no strategy for path parameters {used - set(PARAMS)}"


# -- the findings ------------------------------------------------------------------


def test_json_100000_levels_deep_to_the_registry_is_refused_before_parsing(
    cloud: Served,
) -> None:
    deep = cloud.request("POST", "/v1/registry", b"[" * 100_000)
    assert deep.status == 413 and deep.problem()["reason"] == "json"
    assert "at most 16384" in deep.problem()["detail"]
    within_size = cloud.request("POST", "/v1/registry", b"[" * 5_000 + b"]" * 5_000)
    assert (within_size.status, within_size.problem()["reason"]) == (400, "json")
    assert "nesting deeper than 16" in within_size.problem()["detail"]


def test_the_largest_index_is_refused_with_its_range(cloud: Served) -> None:
    answer = cloud.request("GET", f"/v1/log/entries/{INT64_MAX}/readings")
    assert (answer.status, answer.problem()["reason"]) == (400, "index")
    assert answer.problem()["detail"] == f"got {INT64_MAX}, want an integer 0 to {INT64_MAX - 1}"
    last = cloud.request("GET", f"/v1/log/entries/{INT64_MAX - 1}/readings")
    assert (last.status, last.problem()["reason"]) == (404, "not a batch")


@pytest.mark.parametrize(
    ("field", "value", "want"),
    [
        ("start", 10**19, f"got 10000000000000000000, want an integer 0 to {INT64_MAX}"),
        ("start", -1, f"got -1, want an integer 0 to {INT64_MAX}"),
        ("end", 2**63, None),
        ("start", "0", f"got str, want an integer 0 to {INT64_MAX}"),
        ("start", True, f"got bool, want an integer 0 to {INT64_MAX}"),
    ],
)
def test_an_owner_signed_attach_out_of_range_is_refused_naming_the_field(
    cloud: Served, field: str, value: object, want: str | None
) -> None:
    now = int(time.time())
    fields = {"op": "attach", "key": BOX_KEY, "subject": "LOT-2", "start": now, "end": None}
    fields.update({field: value, "time": now})
    answer = cloud.request("POST", "/v1/registry", signed_request(fields))
    assert (answer.status, answer.problem()["reason"]) == (400, field)
    if want is not None:
        assert answer.problem()["detail"] == want


def test_text_a_database_cannot_store_is_refused(cloud: Served) -> None:
    now = int(time.time())
    fields = {"op": "box", "key": "ab" * 32, "site": "w\x00", "label": "", "time": now}
    answer = cloud.request("POST", "/v1/registry", signed_request(fields))
    assert (answer.status, answer.problem()["reason"]) == (400, "site")
    lone = signed_request({**fields, "site": "w1", "label": "\ud800"})
    answer = cloud.request("POST", "/v1/registry", lone)
    assert (answer.status, answer.problem()["reason"]) == (400, "json")
    assert "lone surrogate" in answer.problem()["detail"]


def test_an_op_that_is_no_string_is_refused_naming_the_op(cloud: Served) -> None:
    # A JSON list as the op was looked up in the table of ops: unhashable, a 500.
    for op in ([], {}, ["gateway"]):
        request = {"change": {"op": op}, "owner": BOX_KEY, "signature": "00" * 64}
        answer = cloud.request("POST", "/v1/registry", json.dumps(request).encode())
        assert (answer.status, answer.problem()["reason"]) == (400, "op"), answer


# -- every route, any input ----------------------------------------------------------------

BOUNDARIES = [0, 1, 2**31, 2**32 - 1, 2**32, INT64_MAX - 1, INT64_MAX, 2**63, 2**64, 10**19]
integers = st.sampled_from(BOUNDARIES) | st.integers() | st.integers(-(2**80), 2**80)
texts = (
    integers.map(str)
    | st.text(max_size=40)
    | st.binary(max_size=40)  # percent-encoded: non-UTF-8 where it likes
    | st.sampled_from(
        ["", "-1", "+1", "1e3", "0x10", " 1", "\uff11\uff12", "\u0663", "00000000000000000000001"]
    )
)
keys = st.sampled_from([BOX_KEY, GW_KEY, "00" * 32, BOX_KEY.upper()]) | texts
keys |= st.sampled_from([f"{GTIN}/L1", M.did])  # subjects of certificates
PARAMS = {
    "device": keys,
    "gateway": keys,
    "seq": texts,
    "index": texts,
    "gtin": st.sampled_from([GTIN]) | texts,
    "lot": st.sampled_from(["L1"]) | texts,
    "did": st.sampled_from([M.did, REGULATOR.did, M.did[:-1]]) | texts,  # admitted, not, broken
    "column": st.sampled_from(["product", "flow_m_to_d", "entities_identity"]) | texts,
    # the Digital Link resolver's path after /01/ (cloud/api/routes/resolver.py)
    "tail": st.sampled_from([GTIN, f"{GTIN}/10/L1", f"{GTIN}/10/L1/21/S1", f"{GTIN}/22/V/10/L"])
    | texts,
}
TEMPLATES = route_templates()  # every route: one added later is covered at once
QUERY_NAMES = ["start", "end", "index", "size", "hash", "old", "new", "limit", "after", "subject"]
QUERY_NAMES += ["17", "linkType"]  # the Digital Link resolver's


@st.composite
def targets(draw: st.DrawFn) -> str:
    """A path from a route's template, any value in each of its parts, any query."""
    template = draw(st.sampled_from(TEMPLATES))
    path = re.sub(
        r"\{(\w+)\}", lambda m: encode(draw(PARAMS[m.group(1)], label=m.group(1))), template
    )
    query = draw(
        st.lists(
            st.tuples(st.sampled_from(QUERY_NAMES) | st.text(max_size=6), keys),
            max_size=4,
        )
    )
    if not query:
        return path
    return path + "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query)


def check(answer: Any) -> None:
    """A success, or a 4xx problem+json: never a 5xx."""
    assert answer.status < 500, answer
    if answer.status >= 400:
        answer.problem()


@given(target=targets(), method=st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE"]))
@SETTINGS
def test_any_path_and_query_on_any_route_is_answered_without_a_500(
    cloud: Served, target: str, method: str
) -> None:
    check(cloud.request(method, target))


@given(st.lists(st.text(max_size=12) | st.binary(max_size=12), min_size=1, max_size=5))
@SETTINGS
def test_paths_of_no_route_are_a_404_problem(cloud: Served, parts: list[Any]) -> None:
    answer = cloud.request("GET", "/" + "/".join(encode(p) for p in parts))
    check(answer)


# -- bodies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | integers | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
deep = st.builds(
    lambda n, opener: opener * n,
    st.integers(1, 30_000),
    st.sampled_from([b"[", b'{"a":', b'{"change":[']),
)
anything: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, 0, -1, 10**19, 2**63, "", "x" * 300, [], {}, 1.5]
)
texts_in_json = st.text(max_size=30) | st.sampled_from(["", "\x00", "a\x1fb", "\u200d", "x" * 201])


@st.composite
def owner_signed_changes(draw: st.DrawFn) -> bytes:
    """A change any field of which may be off, signed by the owner: it passes the
    signature check whenever the cloud can read it, and goes on to the database."""
    now = int(time.time())
    op = draw(st.sampled_from(sorted(registry.OPS)) | st.text(max_size=8))
    fields: dict[str, Any] = {"op": op}
    for name in ("key", *registry.OPS.get(op, ("key", "site"))):
        fields[name] = draw(
            {
                "key": st.sampled_from([BOX_KEY, GW_KEY])
                | st.binary(min_size=32, max_size=32).map(bytes.hex)
                | anything,
                "site": texts_in_json | anything,
                "label": texts_in_json | anything,
                "subject": texts_in_json | anything,
                "start": integers | st.just(now) | anything,
                "end": st.none() | integers | anything,
            }[name],
            label=name,
        )
    fields["time"] = draw(st.just(now) | integers | anything, label="time")
    return signed_request(fields)


registry_bodies = (
    st.binary(max_size=200)
    | deep
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {"change": json_values, "owner": json_values | st.just(BOX_KEY), "signature": json_values}
    ).map(lambda v: json.dumps(v).encode())
    | owner_signed_changes()
)


@given(registry_bodies)
@SETTINGS
def test_any_registry_request_is_answered_without_a_500(cloud: Served, data: bytes) -> None:
    answer = cloud.request("POST", "/v1/registry", data, {"Content-Type": "application/json"})
    check(answer)


TX_ARGS = ["gtin", "lot", "expiry", "quantity", "unit", "profile", "shipment", "receiver"]
TX_ARGS += ["children", "did", "role", "name", "region", "licence", "reason", "class"]


@st.composite
def signed_transactions(draw: st.DrawFn) -> bytes:
    """A transaction of any contract, type and arguments, signed now by the regulator or
    an admitted manufacturer: it passes the signature check and reaches the rules. Where
    the body cannot be signed (a float in it) it goes out with a signature of zeros."""
    contract = draw(st.sampled_from(["participants", "lots"]) | st.text(max_size=8))
    tx_type = draw(
        st.sampled_from(["admit", "suspend", "commission", "ship", "receive", "split", "recall"])
        | st.text(max_size=8)
    )
    args = draw(
        st.dictionaries(
            st.sampled_from(TX_ARGS), json_values | anything | texts_in_json, max_size=6
        )
    )
    signer = draw(st.sampled_from([REGULATOR, party("M")]))
    try:
        return tx.make(contract, tx_type, args, signer.secret).to_wire()
    except (tx.TxError, ValueError):
        body = {"v": 1, "contract": contract, "type": tx_type, "signer": signer.did}
        body |= {"time": int(time.time() * 1000), "nonce": "00" * 16, "args": args}
        return json.dumps({"tx": body, "sig": "00" * 64}).encode()


tx_bodies = (
    st.binary(max_size=200)
    | deep
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"tx": json_values, "sig": json_values}).map(
        lambda v: json.dumps(v).encode()
    )
    | signed_transactions()
)


@given(tx_bodies)
@SETTINGS
def test_any_contract_transaction_is_answered_without_a_500(cloud: Served, data: bytes) -> None:
    answer = cloud.request("POST", "/v1/tx", data, {"Content-Type": "application/json"})
    check(answer)


@st.composite
def batch_bodies(draw: st.DrawFn) -> bytes:
    """Batch uploads: arbitrary bytes, or a header with any field values, signed by the
    registered gateway or not, followed by any bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2 * batch.SIZE))
    fields = {
        "seq": draw(
            st.sampled_from([0, 1, 2, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)
        ),
        "count": draw(st.integers(0, 2**32 - 1)),
        "first": draw(st.integers(0, 2**32 - 1)),
        "last": draw(st.integers(0, 2**32 - 1)),
    }
    raw = struct.pack(
        batch.BODY_FORMAT,
        1,
        bytes.fromhex(GW_KEY),
        fields["seq"],
        draw(st.binary(min_size=32, max_size=32)),
        fields["count"],
        fields["first"],
        fields["last"],
        draw(st.binary(min_size=32, max_size=32)),
    )
    signature = schnorr.sign(GW, schnorr.tagged_hash(batch.TAG, raw))
    return raw + signature + draw(st.binary(max_size=3 * 110))


@given(batch_bodies())
@SETTINGS
def test_any_batch_upload_is_answered_without_a_500(cloud: Served, data: bytes) -> None:
    answer = cloud.request(
        "POST", "/v1/batches", data, {"Content-Type": "application/octet-stream"}
    )
    check(answer)


def test_a_body_over_the_limit_without_content_length_is_refused(cloud: Served) -> None:
    chunks = (b"[" for _ in range(40_000))  # chunked transfer: no Content-Length
    answer = cloud.request("POST", "/v1/registry", chunks)  # type: ignore[arg-type]
    assert (answer.status, answer.problem()["reason"]) == (413, "json")


# -- the witness ---------------------------------------------------------------------------
# Its answers are the C2SP tlog-witness protocol's: text/plain (409 "<size>\n" in
# text/x.tlog.size), not problem+json. Never a 5xx, and only the statuses the spec names.

WITNESS_STATUSES = {200, 400, 403, 404, 405, 409, 413, 422}


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app = make_witness_app(
        WITNESS_KEY, {LOG.name: [LOG.verifier()]}, tmp_path_factory.mktemp("witness")
    )
    with Served(app) as served:
        yield served


@st.composite
def add_checkpoint_bodies(draw: st.DrawFn) -> bytes:
    """Add-checkpoint bodies with any old size, proof lines and checkpoint note: notes
    signed by the configured log (any size and root), by another key, or not notes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    old = draw(integers.map(str) | st.text(max_size=12), label="old")
    proof = draw(
        st.lists(
            st.binary(min_size=32, max_size=32).map(lambda h: base64.b64encode(h).decode())
            | st.text(max_size=50),
            max_size=4,
        ),
        label="proof",
    )
    size = draw(st.sampled_from([0, 1, 12, 64]) | st.integers(0, 2**64 - 1), label="size")
    root = draw(
        st.sampled_from([TREE.root(min(size, 64)), EMPTY_ROOT])
        | st.binary(min_size=32, max_size=32)
    )
    signer = draw(st.sampled_from([LOG, IMPOSTOR, OTHER_LOG]))
    note = draw(
        st.just(sign_checkpoint(Checkpoint(signer.name, size, root), signer))
        | st.text(max_size=200),
        label="note",
    )
    head = "".join(f"{line}\n" for line in [f"old {old}", *proof])
    return (head + "\n" + note).encode("utf-8", "surrogatepass")


@given(add_checkpoint_bodies())
@SETTINGS
def test_any_add_checkpoint_request_is_answered_without_a_500(witness: Served, data: bytes) -> None:
    answer = witness.request("POST", "/add-checkpoint", data)
    assert answer.status in WITNESS_STATUSES, answer
    assert answer.content_type in ("text/plain", "text/x.tlog.size"), answer


@given(target=targets(), method=st.sampled_from(["GET", "POST", "PUT"]))
@SETTINGS
def test_any_other_path_of_the_witness_is_a_4xx(witness: Served, target: str, method: str) -> None:
    answer = witness.request(method, target, b"old 0\n\n")
    assert answer.status in (404, 405), answer


@pytest.mark.parametrize(
    ("old", "size"),
    [(2**63, 2**63), (2**64 - 1, 2**64 - 1), (0, 2**63), (2**64, 5), (10**30, 5), (6, 5)],
)
def test_witness_sizes_beyond_what_it_stores_get_400(witness: Served, old: int, size: int) -> None:
    # Sizes are uint64 on the wire, but the witness stores int64: larger ones never pass.
    note = sign_checkpoint(Checkpoint(LOG.name, size, bytes(32)), LOG)
    answer = witness.request("POST", "/add-checkpoint", f"old {old}\n\n{note}".encode())
    assert (answer.status, answer.content_type) == (400, "text/plain"), answer


def test_a_compressed_body_is_bounded_by_its_inflated_size(cloud: Served) -> None:
    bomb = gzip.compress(b" " * 10_000_000)  # 10 KB inflating to 10 MB: refused at 16 KiB
    assert len(bomb) < 16 * 1024  # its Content-Length is within the limit
    answer = cloud.request("POST", "/v1/registry", bomb, {"Content-Encoding": "gzip"})
    assert (answer.status, answer.problem()["reason"]) == (413, "json")
    small = gzip.compress(b"  " + b"[" * 200)
    answer = cloud.request("POST", "/v1/registry", small, {"Content-Encoding": "gzip"})
    assert (answer.status, answer.problem()["reason"]) == (400, "json")


PARSER_REFUSALS = pytest.mark.parametrize(
    ("request_line", "logged"),
    [
        (b"GET /v1/devices/\xff HTTP/1.1", ["WARNING"]),
        (b"GET /v1/log/entries?start=\x00 HTTP/1.1", ["WARNING"]),
        (b"\x16\x03\x01", []),  # not HTTP at all (TLS): aiohttp logs it at DEBUG
    ],
)


@PARSER_REFUSALS
def test_what_the_cloud_http_parser_refuses_is_a_400_and_one_log_line(
    cloud: Served, caplog: pytest.LogCaptureFixture, request_line: bytes, logged: list[str]
) -> None:
    refused_by_parser(cloud, caplog, request_line, logged)


@PARSER_REFUSALS
def test_what_the_witness_http_parser_refuses_is_a_400_and_one_log_line(
    witness: Served, caplog: pytest.LogCaptureFixture, request_line: bytes, logged: list[str]
) -> None:
    refused_by_parser(witness, caplog, request_line, logged)


def refused_by_parser(
    served: Served, caplog: pytest.LogCaptureFixture, request_line: bytes, logged: list[str]
) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(request_line + b"\r\nHost: x\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request"), answer[:100]
    for _ in range(50):  # the server logs after answering, on its own thread
        if caplog.records:
            break
        time.sleep(0.01)
    assert [r.levelname for r in caplog.records] == logged, caplog.text
    assert not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)
