"""The pharmacy counter through HTTP (POST /v1/packs/verify, and serialize, decommission, undo
and suspect as POST /v1/tx; cloud/services/packs.py), on SQLite and PostgreSQL: a pack is
verified, dispensed, refused a second time and reported, the manufacturer and the regulator
see the alert in their feeds; who dispensed it shows only where the R→P read cell allows;
every malformed field is a 400 naming it and a refusal leaves log and root unchanged; a
restart replays to the same root and the same verdicts; two pharmacies decommissioning one
serial through two PostgreSQL workers: exactly one wins."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.api.state import REPLAY
from cloud.contracts import tx
from cloud.services import replay
from tests.cloud.api.test_app import Cloud, settings, start
from tests.cloud.api.test_feeds import bearer, events
from tests.cloud.api.test_tx import (
    applied,
    heads_agree,
    log_size,
    post,
    receive,
    send,
    ship,
    signed,
    two_workers,
)
from tests.cloud.contracts.world import GTIN, PROFILE, REGULATOR, Party, admission, party

M, D, R, P, P2 = party("M"), party("D"), party("R"), party("P"), party("P2")
PARTIES = {
    "M": (M, "manufacturer"),
    "D": (D, "distributor"),
    "R": (R, "retailer"),
    "P": (P, "pharmacy"),
    "P2": (P2, "pharmacy"),
}
SERIALS = [f"PK{i:05d}" for i in range(200)]


def lots_tx(who: Party, tx_type: str, args: dict[str, Any]) -> tx.SignedTx:
    return signed(who, "lots", tx_type, {"gtin": GTIN, **args})


def decommission(who: Party, serial: str, status: str = "dispensed") -> tx.SignedTx:
    return lots_tx(who, "decommission", {"serial": serial, "status": status})


def chain_steps() -> list[tx.SignedTx]:
    """Admit everyone; M commissions L1 (200) and serializes it in two registrations; 20
    units go M → D → R, then 10 to P and 10 to P2."""
    steps = [
        signed(REGULATOR, "participants", "admit", admission(key, role, name))
        for name, (key, role) in PARTIES.items()
    ]
    commission = {"lot": "L1", "expiry": "271200", "quantity": 200, "unit": "pack"}
    steps.append(lots_tx(M, "commission", {**commission, "profile": PROFILE}))
    steps.append(lots_tx(M, "serialize", {"lot": "L1", "serials": SERIALS[:150]}))
    steps.append(lots_tx(M, "serialize", {"lot": "L1", "serials": SERIALS[150:]}))
    steps += [ship(M, "L1", "S1", D, 20), receive(D, "S1", 20)]
    steps += [ship(D, "L1", "S2", R, 20), receive(R, "S2", 20)]
    steps += [ship(R, "L1", "S3", P, 10), receive(P, "S3", 10)]
    steps += [ship(R, "L1", "S4", P2, 10), receive(P2, "S4", 10)]
    return steps


async def verify(cloud: Cloud, who: Party | None, body: Any) -> tuple[int, Any]:
    headers = {} if who is None else await bearer(cloud, who)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with cloud.session.post(cloud.url("/v1/packs/verify"), data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def scan(serial: str, **over: Any) -> dict[str, Any]:
    return {"gtin": GTIN, "serial": serial, "lot": "L1", "expiry": "271200", **over}


async def test_verify_dispense_second_dispense_suspect_and_undo(regulated: Cloud) -> None:
    for step in chain_steps():
        await applied(regulated, step)
    status, answer = await verify(regulated, P, scan("PK00007"))
    assert status == 200, answer
    assert (answer["verdict"], answer["dispensable"], answer["suspect"]) == (
        "authentic",
        True,
        False,
    )
    assert answer["pack"]["expiry"] == "2027-12-31" and answer["pack"]["status"] == "active"
    await applied(regulated, decommission(P, "PK00007"))
    # a second dispense is refused and leaves nothing; the pharmacy files a suspect report
    size, (_, head) = await log_size(regulated), await regulated.get("/v1/state")
    status, problem = await post(regulated, decommission(P, "PK00007"))
    assert (status, problem["reason"]) == (409, "decommissioned")
    assert await log_size(regulated) == size and (await regulated.get("/v1/state"))[1] == head
    report = {"serial": "PK00007", "reason": "decommissioned", "place": "Apotheke, Berlin"}
    await applied(regulated, lots_tx(P, "suspect", report))
    for who in (M, REGULATOR):
        alerts = [
            e["event"] for e in await events(regulated, who) if e["event"]["type"] == "suspect"
        ]
        assert len(alerts) == 1 and alerts[0]["place"] == "Apotheke, Berlin", who
        assert alerts[0]["verdict"] == "decommissioned"
    # who dispensed and when: a pharmacy's R→P cell is yes, the regulator's no
    status, answer = await verify(regulated, P2, scan("PK00007"))
    assert answer["verdict"] == "decommissioned" and not answer["dispensable"]
    assert answer["decommission"]["by"] == P.did and answer["decommission"]["status"] == "dispensed"
    status, answer = await verify(regulated, REGULATOR, scan("PK00007"))
    assert answer["decommission"] is None
    assert answer["withheld"] == {"flow_r_to_p": "read: regulator × R→P = no"}
    # an unknown serial and a label that differs from the registration are suspect
    status, answer = await verify(regulated, P, scan("FAKE"))
    assert (answer["verdict"], answer["suspect"], answer["pack"]) == ("unknown", True, None)
    status, answer = await verify(regulated, P, scan("PK00008", lot="L2"))
    assert answer["verdict"] == "mismatch" and answer["suspect"]
    status, answer = await verify(regulated, P, scan("PK00008", expiry="271100"))
    assert answer["verdict"] == "mismatch"
    status, answer = await verify(regulated, P, scan("PK00008", expiry="271231"))
    assert answer["verdict"] == "authentic"  # 271200: day 00 is the month's last day
    # the same pharmacy undoes its dispense; another cannot
    status, problem = await post(regulated, lots_tx(P2, "undo", {"serial": "PK00007"}))
    assert (status, problem["reason"]) == (403, "decommissioner")
    await applied(regulated, lots_tx(P, "undo", {"serial": "PK00007"}))
    assert (await verify(regulated, P, scan("PK00007")))[1]["verdict"] == "authentic"


async def test_verify_refuses_each_malformed_field_with_its_name(regulated: Cloud) -> None:
    for step in chain_steps()[:5]:
        await applied(regulated, step)
    assert (await verify(regulated, None, scan("PK00001")))[0] == 401
    cases: list[tuple[Any, str]] = [
        (scan("PK00001", gtin="09506000134353"), "gtin"),  # check digit
        (scan("x" * 21), "serial"),
        (scan("a b"), "serial"),
        (scan("PK00001", lot="a b"), "lot"),
        (scan("PK00001", expiry="271301"), "expiry"),
        (scan("PK00001", expiry=271200), "expiry"),
        ({"gtin": GTIN}, "serial"),
        ({**scan("PK00001"), "extra": 1}, "body"),
        ([1], "body"),
        ({"scan": "(01)09506000134353(21)PK00001"}, "scan"),  # tests/.../test_pack_scans.py
        (b"{not json", "json"),
        (b"[" * 100, "json"),
    ]
    for body, reason in cases:
        status, problem = await verify(regulated, P, body)
        assert (status, problem["reason"]) == (400, reason), body
    status, problem = await verify(regulated, P, {"scan": "x" * 5000})
    assert status == 413


async def test_one_pack_under_each_gtin_form_is_one_pack(regulated: Cloud) -> None:
    """GTIN-13 and GTIN-14 (its zero-padded form) name one product: the counter answers
    the same verdict on either, and a pack dispensed under one is dispensed under the
    other (no second dispense through the other spelling)."""
    for step in chain_steps():
        await applied(regulated, step)
    short = GTIN[1:]  # 9506000134352: the GTIN-13 GS1's examples pad to 14 digits
    _, long_form = await verify(regulated, P, scan("PK00011"))
    _, short_form = await verify(regulated, P, scan("PK00011", gtin=short))
    assert short_form["verdict"] == long_form["verdict"] == "authentic"
    assert short_form["pack"] == long_form["pack"] and short_form["gtin"] == GTIN
    sold = {"gtin": short, "serial": "PK00011", "status": "dispensed"}
    await applied(regulated, signed(P, "lots", "decommission", sold))
    status, problem = await post(regulated, decommission(P2, "PK00011"))
    assert (status, problem["reason"]) == (409, "decommissioned"), problem
    _, again = await verify(regulated, P2, scan("PK00011", gtin=short))
    assert again["verdict"] == "decommissioned" and again["decommission"]["by"] == P.did


async def test_serialize_bulk_envelopes_and_their_limits(regulated: Cloud) -> None:
    for step in chain_steps()[:6]:
        await applied(regulated, step)
    many = [f"BULK{i:08d}" for i in range(5000)]
    big = lots_tx(M, "serialize", {"lot": "L1", "serials": many[:50]})
    await applied(regulated, big)
    status, problem = await post(regulated, lots_tx(M, "serialize", {"lot": "L1", "serials": many}))
    assert (status, problem["reason"]) == (409, "quantity")  # over 64 KiB, and taken to the rule
    oversized = lots_tx(M, "commission", {"lot": "L9", "note": "x" * tx.MAX_ENVELOPE})
    status, problem = await post(regulated, oversized)
    assert (status, problem["reason"]) == (413, "json")
    clash = lots_tx(M, "serialize", {"lot": "L1", "serials": ["NEW", "BULK00000049", "PK00000"]})
    status, problem = await post(regulated, clash)
    assert (status, problem["reason"]) == (409, "serial") and "BULK00000049" in problem["detail"]


async def test_a_replay_page_stops_before_its_bodies_pass_its_byte_budget(
    regulated: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = chain_steps()
    for step in steps:
        await applied(regulated, step)
    service = regulated.server.app[REPLAY]
    every = await service._rows(-1, 1000)
    assert [tx.from_record(r.canonical, r.sig).id for r in every] == [s.id for s in steps]
    sizes = [len(r.canonical) for r in every]
    monkeypatch.setattr(replay, "MAX_PAGE_BYTES", sum(sizes[:6]))
    assert len(await service._rows(-1, 1000)) == 6
    monkeypatch.setattr(replay, "MAX_PAGE_BYTES", 1)
    assert len(await service._rows(-1, 1000)) == 1  # always one, whatever its size
    assert len(await service._rows(every[2].log_index, 3)) == 1


async def test_a_restart_replays_to_the_same_root_and_verdicts(
    tmp_path: Path, database: str | None
) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    c = Cloud(server, session)
    try:
        for step in chain_steps():
            await applied(c, step)
        await applied(c, decommission(P, "PK00001"))
        await applied(c, decommission(P2, "PK00002", "destroyed"))
        _, before = await c.get("/v1/state")
        verdicts = [(await verify(c, P, scan(s)))[1]["verdict"] for s in ("PK00001", "PK00003")]
    finally:
        await session.close()
        await server.close()
    server, session = await start(config)
    c = Cloud(server, session)
    try:
        _, after = await c.get("/v1/state")
        assert after == before
        again = [(await verify(c, P, scan(s)))[1]["verdict"] for s in ("PK00001", "PK00003")]
        assert again == verdicts == ["decommissioned", "authentic"]
        status, problem = await post(c, decommission(P, "PK00001"))
        assert (status, problem["reason"]) == (409, "decommissioned")
    finally:
        await session.close()
        await server.close()


async def test_two_pharmacies_two_workers_one_serial_exactly_one_wins(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with (
        two_workers(tmp_path / "cloud", postgres_dsn) as urls,
        aiohttp.ClientSession() as http,
    ):
        for step in chain_steps():
            assert (await send(http, urls[0], step))[0] == 201
        for serial in SERIALS[:5]:
            both = [decommission(P, serial), decommission(P2, serial)]
            answers = await asyncio.gather(*(send(http, urls[n], s) for n, s in enumerate(both)))
            assert sorted(status for status, _ in answers) == [201, 409], answers
            assert [a["reason"] for s, a in answers if s == 409] == ["decommissioned"]
        await heads_agree(http, urls)
