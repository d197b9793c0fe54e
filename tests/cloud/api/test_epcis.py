"""EPCIS 2.0 on the running ledger, through HTTP on SQLite and PostgreSQL
(cloud/services/epcis.py, cloud/api/routes/epcis.py): a lot's export as each reader may see
it, valid against GS1's EPCIS 2.0 JSON Schema; GET /epcis/events with the standard query
parameters and its next-page links; POST /epcis/capture of a partner's signed statement,
accepted, refused naming the first event that contradicts the ledger, forged; bad
parameters answered 400 with an EPCIS exception, never 500."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.audit.replay import replay
from cloud.cli import main
from cloud.contracts import epcis, tx
from device import schnorr
from tests.cloud.api.test_app import OWNER, Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.api.test_lot_coldchain import (
    AUDITOR,
    BOX,
    CALM,
    HIGH,
    Remote,
    Site,
    admit,
    granted,
    signed,
)
from tests.cloud.api.test_tx import (  # noqa: F401
    GTIN,
    D,
    M,
    R,
    applied,
    cloud,
    commission,
    post,
    receive,
    ship,
)
from tests.cloud.api.test_workers import start_cloud
from tests.cloud.contracts.world import REGULATOR, party

P = party("P")
SCHEMA_FILE = Path(__file__).parents[4] / "shared" / "vectors" / "epcis" / "EPCIS-JSON-Schema.json"
L1 = epcis.lot_uri(GTIN, "L1")
CHILD = epcis.lot_uri(GTIN, "L1-A")


def validator() -> Any:
    """GS1's EPCIS 2.0 JSON Schema (../shared/vectors/epcis), or skip."""
    if not SCHEMA_FILE.exists():
        pytest.skip(f"{SCHEMA_FILE} is absent (../shared is not beside the repository)")
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def valid(document: dict[str, Any]) -> None:
    errors = [e.message[:300] for e in validator().iter_errors(document)]
    assert not errors, errors[:5]


async def bearer(ledger: Cloud, who: Any) -> dict[str, str]:
    if who is None:
        return {}
    return {"Authorization": f"Bearer {(await sign_in(ledger, who))['token']}"}


async def export(ledger: Cloud, who: Any, lot: str = "L1") -> tuple[int, Any]:
    url = ledger.url(f"/v1/lots/{GTIN}/{lot}/epcis")
    async with ledger.session.get(url, headers=await bearer(ledger, who)) as r:
        return r.status, await r.json(content_type=None)


async def query(
    ledger: Cloud, who: Any, params: dict[str, str] | str, url: str | None = None
) -> tuple[int, Any, str | None]:
    target = url or ledger.url("/epcis/events")
    kwargs = {} if url else {"params": params}
    async with ledger.session.get(target, headers=await bearer(ledger, who), **kwargs) as r:
        return r.status, await r.json(content_type=None), r.headers.get("Link")


def events(document: dict[str, Any]) -> list[dict[str, Any]]:
    if document["type"] == "EPCISQueryDocument":
        return list(document["epcisBody"]["queryResults"]["resultsBody"]["eventList"])
    return list(document["epcisBody"]["eventList"])


def steps(document: dict[str, Any]) -> list[str | None]:
    return [e.get("bizStep") for e in events(document)]


async def supply_chain(ledger: Cloud) -> int:
    """M (controlling the box owner's key) commissions L1 and ships 100 to D as S1 with a
    box whose readings quarantine it (an excursion); D receives, M releases it; D ships 60
    to R (S2), R receives and splits them into L1-A (40) and L1-B (20); R ships L1-A to P
    (S3), P receives and dispenses 5; M recalls L1 (and so its children). Return the box
    window's first second."""
    site = Site(ledger)
    await site.register()
    await applied(ledger, admit(M, "manufacturer", "M", [schnorr.pubkey(OWNER).hex()]))
    for who, role in ((D, "distributor"), (R, "retailer"), (P, "pharmacy")):
        await applied(ledger, admit(who, role, role))
    await applied(ledger, commission("L1", 100))
    await applied(ledger, ship(M, "L1", "S1", D, 100))
    start_ms = int(time.time() * 1000) + 1000
    attach = {"box": schnorr.pubkey(BOX).hex(), "shipment": "S1", "start": start_ms, "end": None}
    await applied(ledger, signed(M, "attach", attach))
    t0 = -(-start_ms // 1000)
    await site.send(BOX, t0, [CALM] * 10 + [HIGH] * 20, [4000] * 10 + [6500] * 20)
    await applied(ledger, receive(D, "S1", 100))
    dispose = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "stability data"}
    await applied(ledger, signed(M, "dispose", dispose))
    await applied(ledger, ship(D, "L1", "S2", R, 60))
    await applied(ledger, receive(R, "S2", 60))
    children = [{"lot": "L1-A", "quantity": 40}, {"lot": "L1-B", "quantity": 20}]
    await applied(ledger, signed(R, "split", {"gtin": GTIN, "lot": "L1", "children": children}))
    await applied(ledger, ship(R, "L1-A", "S3", P, 40))
    await applied(ledger, receive(P, "S3", 40))
    await applied(ledger, signed(P, "dispense", {"gtin": GTIN, "lot": "L1-A", "quantity": 5}))
    recall = {"gtin": GTIN, "lot": "L1", "class": "II", "reason": "label"}
    await applied(ledger, signed(M, "recall", recall))
    return t0


async def test_the_export_is_valid_epcis_and_shows_each_reader_its_cells(
    cloud: Cloud,  # noqa: F811
) -> None:
    await supply_chain(cloud)
    status, full = await export(cloud, M)  # the manufacturer: every cell yes
    assert status == 200, full
    valid(full)
    assert full["@context"] == [epcis.CONTEXT] and full["schemaVersion"] == "2.0"
    found = events(full)
    assert [e["eventTime"] for e in found] == sorted(e["eventTime"] for e in found)
    assert all(e["eventTimeZoneOffset"] == "+00:00" for e in found)
    assert len({e["eventID"] for e in found}) == len(found)
    assert all(e["eventID"].startswith("urn:uuid:") for e in found)
    by_step: dict[Any, list[dict[str, Any]]] = {}
    for e in found:
        by_step.setdefault((e["type"], e.get("bizStep"), e.get("disposition")), []).append(e)
    (made,) = by_step["ObjectEvent", "commissioning", "active"]
    assert made["action"] == "ADD" and made["quantityList"] == [{"epcClass": L1, "quantity": 100}]
    assert made["ilmd"]["cbvmda:lotNumber"] == "L1" and made["bizLocation"] == {"id": M.did}
    shipped = by_step["ObjectEvent", "shipping", "in_transit"]
    assert [e["quantityList"][0]["quantity"] for e in shipped] == [100, 60, 40]
    first = shipped[0]
    assert first["sourceList"] == [
        {"type": "owning_party", "source": M.did},
        {"type": "possessing_party", "source": M.did},
    ]
    assert {d["destination"] for d in first["destinationList"]} == {D.did}
    assert {"type": "desadv", "bizTransaction": "urn:pharmasync:shipment:S1"} in first[
        "bizTransactionList"
    ]
    received = by_step["ObjectEvent", "receiving", "in_progress"]
    assert [e["bizLocation"]["id"] for e in received] == [D.did, R.did, P.did]
    (split,) = by_step["TransformationEvent", "repackaging", "active"]
    assert split["inputQuantityList"] == [{"epcClass": L1, "quantity": 60}]
    assert split["outputQuantityList"][0] == {"epcClass": CHILD, "quantity": 40}
    (dispensed,) = by_step["ObjectEvent", "dispensing", "dispensed"]
    assert dispensed["quantityList"] == [{"epcClass": CHILD, "quantity": 5}]
    assert dispensed["readPoint"] == {"id": P.did}
    quarantined, released = (
        by_step["ObjectEvent", "inspecting", "non_sellable_other"],
        (by_step["ObjectEvent", "inspecting", "sellable_accessible"]),
    )
    assert len(quarantined) == 1 and len(released) == 1  # the readings', then M's dispose
    recalled = by_step["ObjectEvent", None, "recalled"]
    assert {e["quantityList"][0]["epcClass"] for e in recalled} == {
        L1, CHILD, epcis.lot_uri(GTIN, "L1-B")
    }  # fmt: skip
    (sensor,) = by_step["ObjectEvent", "sensor_reporting", None]
    (element,) = sensor["sensorElementList"]
    figures, humidity, *alarms = element["sensorReport"]
    assert (figures["minValue"], figures["maxValue"]) == (5.0, 10.0)
    assert figures["meanValue"] == pytest.approx((10 * 5 + 20 * 10) / 30, abs=0.01)
    assert (humidity["type"], humidity["uom"]) == ("RelativeHumidity", "P1")  # percent
    assert (humidity["minValue"], humidity["maxValue"]) == (40.0, 65.0)
    assert humidity["meanValue"] == pytest.approx((10 * 40 + 20 * 65) / 30, abs=0.01)
    assert alarms and all(a["exception"] == "ALARM_CONDITION" for a in alarms)
    assert alarms[0]["value"] == 10.0 and figures["uom"] == "CEL"

    _, again = await export(cloud, M)  # the same facts, the same eventIDs
    assert [e["eventID"] for e in events(again)] == [e["eventID"] for e in found]

    status, public = await export(cloud, None)  # the public: public records only
    assert status == 200, public
    valid(public)
    text = json.dumps(public)
    for secret in (D.did, R.did, P.did, "S1", "S2", "S3", '"quantity"'):
        assert secret not in text, secret
    assert {s for s in steps(public)} == {"commissioning", "inspecting", None}

    status, retailer = await export(cloud, R)  # involved: D→R and R→P, not M→D
    assert status == 200, retailer
    valid(retailer)
    text = json.dumps(retailer)
    assert "shipment:S2" in text and "shipment:S3" in text and "shipment:S1" not in text
    assert steps(retailer).count("sensor_reporting") == 1  # quality: if involved, and it is

    status, regulator = await export(cloud, REGULATOR)  # quality yes, legs and lineage no
    assert status == 200, regulator
    valid(regulator)
    assert "shipping" not in steps(regulator) and "repackaging" not in steps(regulator)
    assert "sensor_reporting" in steps(regulator) and D.did not in json.dumps(regulator)

    status, child = await export(cloud, P, "L1-A")  # a child: its own and its split
    assert status == 200, child
    assert "repackaging" in steps(child) and "dispensing" in steps(child)
    assert "shipment:S2" not in json.dumps(child)  # D→R is not a pharmacy's

    status, problem = await export(cloud, None, "NEVER")
    assert (status, problem["reason"]) == (404, "lot"), problem
    status, problem = await export(cloud, None, "L%201")
    assert (status, problem["reason"]) == (400, "lot"), problem


async def test_a_lots_export_names_its_children_only_to_readers_of_lineage(
    cloud: Cloud,  # noqa: F811
) -> None:
    """The export of a lot holds its descendants' events, which name the child lots: that
    L1 was split into L1-A and L1-B is lineage, product `yes` only (the public's and the
    regulator's product cell is global only: "no lineage", as on GET /v1/lots). So their
    export of L1 is L1's events alone (its recall, not its children's); a child's own
    export is still answered to them, and a participant still gets the family."""
    await supply_chain(cloud)
    for who in (None, REGULATOR):
        status, parent = await export(cloud, who)
        assert status == 200, parent
        text = json.dumps(parent)
        assert "L1-A" not in text and "L1-B" not in text, who
        assert {q["epcClass"] for e in events(parent) for q in e["quantityList"]} == {L1}
        status, child = await export(cloud, who, "L1-A")
        assert status == 200 and CHILD in json.dumps(child), child
    _, family = await export(cloud, M)
    assert "L1-A" in json.dumps(family) and "L1-B" in json.dumps(family)


async def test_the_query_answers_the_standard_parameters_and_pages(
    cloud: Cloud,  # noqa: F811
) -> None:
    await supply_chain(cloud)
    status, found, link = await query(cloud, M, {"EQ_bizStep": "shipping"})
    assert status == 200, found
    valid(found)
    assert found["type"] == "EPCISQueryDocument" and link is None
    assert [e["quantityList"][0]["quantity"] for e in events(found)] == [100, 60, 40]

    urn = {"EQ_bizStep": "urn:epcglobal:cbv:bizstep:shipping|receiving"}
    status, both, _ = await query(cloud, M, urn)
    assert sorted(steps(both)) == ["receiving"] * 3 + ["shipping"] * 3

    pages, link = [], None
    status, page, link = await query(cloud, M, {"EQ_bizStep": "shipping", "perPage": "1"})
    pages.append(page)
    while link is not None:
        assert link.endswith('>; rel="next"') and "perPage=1" in link
        status, page, link = await query(cloud, M, {}, link[1 : link.index(">")])
        assert status == 200, page
        pages.append(page)
    assert [len(events(p)) for p in pages] == [1, 1, 1]
    assert [events(p)[0] for p in pages] == events(found)

    status, child, _ = await query(cloud, M, {"MATCH_epc": CHILD})
    assert "shipping" in steps(child) and "repackaging" not in steps(child)
    assert all(e["quantityList"][0]["epcClass"] == CHILD for e in events(child))
    status, any_epc, _ = await query(cloud, M, {"MATCH_anyEPC": CHILD})
    assert "repackaging" in steps(any_epc)
    status, at_d, _ = await query(cloud, M, {"EQ_bizLocation": D.did})
    assert steps(at_d) == ["receiving"]
    status, recalled, _ = await query(cloud, None, {"EQ_disposition": "recalled"})
    assert len(events(recalled)) == 3  # public records: the public sees them
    times = [e["eventTime"] for e in events(found)]
    window = {"EQ_bizStep": "shipping", "GE_eventTime": times[1], "LT_eventTime": times[2]}
    status, middle, _ = await query(cloud, M, window)
    assert [e["eventTime"] for e in events(middle)] == [times[1]]
    status, public, _ = await query(cloud, None, {"EQ_bizStep": "shipping"})
    assert (status, events(public)) == (200, [])  # no leg is the public's
    status, pharmacy, _ = await query(cloud, P, {"EQ_bizStep": "shipping"})
    assert [e["quantityList"][0]["quantity"] for e in events(pharmacy)] == [40]  # R→P only

    for params, reason in (
        ({"EQ_bizStep": "shipping", "perPage": "0"}, "perPage"),
        ({"perPage": "\uff11"}, "perPage"),  # a full-width digit one
        ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
        ({"LT_eventTime": "2026-01-01T00:00:00"}, "LT_eventTime"),  # no offset
        ({"MATCH_epc": "urn:epc:class:lgtin:4012345.012345.L1"}, "MATCH_epc"),
        ({"MATCH_anyEPC": "https://id.gs1.org/01/12345678901234/10/L1"}, "MATCH_anyEPC"),
        ({"eventType": "CoffeeEvent"}, "eventType"),
        ({"EQ_color": "red"}, "EQ_color"),
        ({"nextPageToken": "!!"}, "nextPageToken"),
        ({"EQ_bizStep": ""}, "EQ_bizStep"),
    ):
        status, problem, _ = await query(cloud, M, params)
        assert (status, problem["reason"]) == (400, reason), (params, problem)
        assert problem["type"] == "epcisException:QueryParameterException"
    url = cloud.url("/epcis/events") + "?EQ_bizStep=shipping&EQ_bizStep=receiving"
    status, problem, _ = await query(cloud, M, {}, url)
    assert (status, problem["reason"]) == (400, "EQ_bizStep"), problem


def statement(who: Any, body: bytes, count: int, lot: str = "L1") -> str:
    """The PharmaSync-Statement header: who's signed `statement` of `body`."""
    args = {"gtin": GTIN, "lot": lot, "document": hashlib.sha256(body).hexdigest()}
    envelope = tx.make("lots", "statement", {**args, "events": count}, who.secret)
    return base64.urlsafe_b64encode(envelope.to_wire()).decode().rstrip("=")


async def capture(ledger: Cloud, body: bytes, header: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/ld+json"}
    if header is not None:
        headers["PharmaSync-Statement"] = header
    async with ledger.session.post(ledger.url("/epcis/capture"), data=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_a_partners_capture_is_checked_against_the_ledger(
    cloud: Cloud,  # noqa: F811
) -> None:
    await supply_chain(cloud)
    _, mine = await export(cloud, D)  # D's own view: its shipments S1 (in) and S2 (out)
    legs = [e for e in events(mine) if e.get("bizStep") in ("shipping", "receiving")]
    legs = [e for e in legs if "shipment:S1" in json.dumps(e) or "shipment:S2" in json.dumps(e)]
    assert len(legs) == 4
    document = {**epcis.document([], 0), "epcisBody": {"eventList": legs}}
    body = json.dumps(document).encode()

    status, answer = await capture(cloud, body, statement(D, body, 4))
    assert status == 201, answer
    assert answer["document"] == hashlib.sha256(body).hexdigest() and answer["events"] == 4
    _, head = await cloud.get("/v1/state")
    assert answer["statement"]["root"] == head["root"]
    status, problem = await capture(cloud, body, statement(D, body, 4))  # stated once
    assert (status, problem["reason"]) == (409, "stated"), problem

    wrong = copy.deepcopy(document)
    wrong["epcisBody"]["eventList"][2]["quantityList"][0]["quantity"] = 59
    bad = json.dumps(wrong).encode()
    before = await cloud.get("/v1/state")
    status, problem = await capture(cloud, bad, statement(D, bad, 4))
    assert (status, problem["reason"]) == (409, "contradiction"), problem
    event_id = wrong["epcisBody"]["eventList"][2]["eventID"]
    assert problem["detail"].startswith(f"event 2 ({event_id}): quantity"), problem
    assert problem["type"] == "epcisException:ValidationException"
    assert await cloud.get("/v1/state") == before  # nothing applied

    late = copy.deepcopy(document)
    late["epcisBody"]["eventList"][0]["eventTime"] = "2020-01-01T00:00:00.000Z"
    late_body = json.dumps(late).encode()
    status, problem = await capture(cloud, late_body, statement(D, late_body, 4))
    assert (status, problem["reason"]) == (409, "contradiction"), problem
    assert problem["detail"].startswith("event 0") and "eventTime" in problem["detail"]

    status, problem = await capture(cloud, body, statement(P, body, 4))  # not P's shipments
    assert (status, problem["reason"]) == (409, "contradiction"), problem
    assert "no shipment of lot" in problem["detail"] and "S1" in problem["detail"]
    stranger = party("not in the chain")
    await applied(cloud, admit(stranger, "distributor", "stranger"))
    before = await cloud.get("/v1/state")
    status, problem = await capture(cloud, body, statement(stranger, body, 4))
    assert (status, problem["reason"]) == (409, "involved"), problem  # nothing compared
    status, problem = await capture(cloud, body, statement(party("no one"), body, 4))
    assert (status, problem["reason"]) == (403, "participant"), problem

    forged = json.dumps({**document, "creationDate": "2026-01-01T00:00:00Z"}).encode()
    status, problem = await capture(cloud, forged, statement(D, body, 4))  # another body
    assert (status, problem["reason"]) == (422, "document"), problem
    envelope = json.loads(base64.urlsafe_b64decode(statement(D, bad, 4) + "=="))
    envelope["sig"] = ("00" if envelope["sig"][:2] != "00" else "11") + envelope["sig"][2:]
    header = base64.urlsafe_b64encode(json.dumps(envelope).encode()).decode()
    status, problem = await capture(cloud, bad, header)  # a forged signature
    assert (status, problem["reason"]) == (401, "signature"), problem
    status, problem = await capture(cloud, body, None)
    assert (status, problem["reason"]) == (401, "statement"), problem
    status, problem = await capture(cloud, body, "%%%")
    assert (status, problem["reason"]) == (400, "statement"), problem
    status, problem = await capture(cloud, body, statement(D, body, 3))
    assert (status, problem["reason"]) == (422, "events"), problem
    deep = b"[" * 100 + b"]" * 100
    status, problem = await capture(cloud, deep, statement(D, deep, 1))
    assert (status, problem["reason"]) == (400, "json"), problem
    huge = b" " * (1024 * 1024 + 1)
    status, problem = await capture(cloud, huge, statement(D, b"", 1))
    assert status == 413, problem
    assert await cloud.get("/v1/state") == before  # no refused capture applied anything


async def test_a_statement_is_taken_only_through_capture_with_its_document(
    cloud: Cloud,  # noqa: F811
) -> None:
    """A statement on the ledger says its document's events agreed with the ledger when it
    was applied, which only POST /epcis/capture checks (the rule has the hash, not the
    document): the same signed statement posted to POST /v1/tx or /v1/tx/batch, where no
    document comes with it, is refused and leaves nothing, so no partner can put on the
    ledger a statement of a document that contradicts it."""
    await supply_chain(cloud)
    lie = b'{"type":"EPCISDocument","epcisBody":{"eventList":[{"type":"ObjectEvent"}]}}'
    envelope = base64.urlsafe_b64decode(statement(D, lie, 1) + "==")
    before = await cloud.get("/v1/state")
    status, problem = await post(cloud, envelope)
    assert (status, problem["reason"]) == (400, "tx.type"), problem
    assert "/epcis/capture" in problem["detail"], problem
    status, answer = await cloud.post("/v1/tx/batch", b"[" + envelope + b"]", "application/json")
    assert status == 200, answer
    (result,) = answer["results"]
    assert (result["status"], result["reason"]) == (400, "tx.type"), result
    assert await cloud.get("/v1/state") == before
    status, problem = await capture(cloud, lie, statement(D, lie, 1))  # where it is checked
    assert (status, problem["reason"]) == (409, "contradiction"), problem


async def test_the_epcis_command_writes_what_the_reader_may_see(
    cloud: Cloud,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await supply_chain(cloud)
    url = cloud.url("").rstrip("/")
    key = tmp_path / "retailer.key"
    key.write_text(R.secret.hex() + "\n")
    out = tmp_path / "L1.epcis.jsonld"
    argv = ["lots", "epcis", GTIN, "L1", "--cloud", url]
    assert await asyncio.to_thread(main, [*argv, "--key", str(key), "--out", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    written = json.loads(out.read_text())
    valid(written)
    assert "urn:pharmasync:shipment:S2" in out.read_text()
    assert "urn:pharmasync:shipment:S1" not in out.read_text()  # M→D: not a retailer's
    assert await asyncio.to_thread(main, argv) == 0  # the public, to stdout
    public = json.loads(capsys.readouterr().out)
    assert len(events(public)) < len(events(written)) and "shipping" not in steps(public)
    assert await asyncio.to_thread(main, [*argv[:3], "NEVER", *argv[4:]]) == 1
    assert "HTTP 404: lot" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a wrong check digit, refused before any request
        main(["lots", "epcis", GTIN[:-1] + "0", "L1"])
    assert "GTIN" in capsys.readouterr().err


async def test_a_restart_rebuilds_the_same_events_by_replay(
    tmp_path: Path, database: str | None
) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    try:
        ledger = Cloud(server, session)
        await supply_chain(ledger)
        _, mine = await export(ledger, D)
        shipped = [e for e in events(mine) if "shipment:S1" in json.dumps(e)]
        body = json.dumps({**epcis.document([], 0), "epcisBody": {"eventList": shipped}})
        status, answer = await capture(ledger, body.encode(), statement(D, body.encode(), 2))
        assert status == 201, answer
        await granted(ledger)
        _, before = await export(ledger, M)
        _, head = await ledger.get("/v1/state")
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)
    try:
        ledger = Cloud(server, session)
        _, after = await export(ledger, M)
        assert events(after) == events(before)  # the index and the quarantines came back
        assert (await ledger.get("/v1/state"))[1] == head
        async with aiohttp.ClientSession() as client:  # the statement replays like any tx
            report = await replay(ledger.url("").rstrip("/"), AUDITOR.secret, client)
        assert report.parted_at is None, report.render()
    finally:
        await session.close()
        await server.close()


async def test_two_worker_processes_on_one_postgresql_export_the_same_events(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Every transaction reaches one `cloud serve` process, the export is asked of another:
    it follows the log first (its EPCIS index too), so both answer the same events."""
    if not (Path(sys.executable).parent / "pharmasync").exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    options = ("--database", postgres_dsn, "--owner", schnorr.pubkey(OWNER).hex())
    data = tmp_path / "cloud"
    workers = [await start_cloud(data, *options, "--regulator", REGULATOR.did) for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as http:
            one, two = (Remote(url, http) for _, url in workers)
            await supply_chain(one)
            found = [events((await export(c, M))[1]) for c in (one, two)]
            assert found[0] == found[1] and len(found[0]) > 10
            status, page, _ = await query(two, R, {"EQ_bizStep": "receiving"})
            assert (status, len(events(page))) == (200, 2)  # D→R and R→P: the retailer's
    finally:
        for proc, _ in workers:
            proc.terminate()
            proc.wait(timeout=30)


async def test_epc_urns_where_the_manufacturer_declared_its_company_prefix(
    cloud: Cloud,  # noqa: F811
) -> None:
    await supply_chain(cloud)
    lot_urn = "urn:epc:class:lgtin:9506000.013435.L1"  # GTIN 09506000134352, GCP 9506000
    status, problem, _ = await query(cloud, M, {"MATCH_epc": lot_urn})
    assert (status, problem["reason"]) == (400, "MATCH_epc"), problem
    assert "9506000 is not registered" in problem["detail"]
    assert problem["type"] == "epcisException:QueryParameterException"
    await applied(cloud, signed(M, "gs1-prefix", {"prefixes": ["9506000"]}))

    status, by_urn, _ = await query(cloud, M, {"MATCH_epc": lot_urn, "EQ_bizStep": "shipping"})
    assert status == 200, by_urn
    _, by_uri, _ = await query(cloud, M, {"MATCH_epc": L1, "EQ_bizStep": "shipping"})
    assert events(by_urn) == events(by_uri) and len(events(by_urn)) == 2
    status, problem, _ = await query(
        cloud, M, {"MATCH_epc": lot_urn.replace("9506000.0", "950600.00")}
    )
    assert (status, problem["reason"]) == (400, "MATCH_epc") and "registered company" in problem[
        "detail"
    ]

    urns = {"GS1-EPC-Format": "Always_EPC_URN"}
    url = cloud.url(f"/v1/lots/{GTIN}/L1/epcis")
    async with cloud.session.get(url, headers={**await bearer(cloud, M), **urns}) as r:
        assert r.status == 200 and r.headers["GS1-EPC-Format"] == "Always_EPC_URN"
        document = await r.json(content_type=None)
    valid(document)
    classes = {q["epcClass"] for e in events(document) for q in e.get("quantityList", [])}
    assert lot_urn in classes and L1 not in classes
    async with cloud.session.get(
        cloud.url("/epcis/events"), params={"EQ_bizStep": "shipping"}, headers=urns
    ) as r:
        assert r.status == 200 and r.headers["GS1-EPC-Format"] == "Always_EPC_URN"
    for value in ("Always_GS1_Digital_Link", "No_Preference"):
        async with cloud.session.get(url, headers={"GS1-EPC-Format": value}) as r:
            assert r.headers["GS1-EPC-Format"] == value
            assert lot_urn not in json.dumps(await r.json(content_type=None))
    for path in (url, cloud.url("/epcis/events")):
        async with cloud.session.get(path, headers={"GS1-EPC-Format": "Always_URN"}) as r:
            problem = await r.json(content_type=None)
            assert (r.status, problem["reason"]) == (400, "GS1-EPC-Format"), problem
