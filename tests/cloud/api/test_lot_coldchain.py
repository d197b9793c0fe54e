"""Readings drive a lot's quality on the running ledger (cloud/services/contracts.py,
contract_follow.py), through HTTP on SQLite and PostgreSQL: a box registered on the
registry is attached to a shipment by the participant controlling its owner key; a signed
batch with an excursion beyond the lot's profile quarantines the lot by itself, with a 0x04
right after the batch; a calm batch never lifts it, a signed dispose does; batches of boxes
on no lot add no 0x04; equivocating readings never count; the history reads the aggregates
as the read policy allows; a restart and `verify --replay` reach the same roots; two `cloud
serve` processes on one PostgreSQL, one taking the attach and the other the batch, agree."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.api.state import CONTRACTS
from cloud.audit.replay import replay
from cloud.cli import main
from cloud.contracts import policy, stateroot, tx
from device import reading, schnorr
from gateway import batch, config_entry
from gateway import registry_change as registry
from tests.cloud.api.test_app import OWNER, Cloud, settings, start
from tests.cloud.api.test_auth import sign_in
from tests.cloud.api.test_feeds import feed
from tests.cloud.api.test_tx import (  # noqa: F401
    GTIN,
    D,
    M,
    R,
    applied,
    cloud,
    commission,
    log_size,
    receive,
    ship,
)
from tests.cloud.api.test_workers import EXE, start_cloud
from tests.cloud.contracts.world import REGULATOR, Party, admission, party

GW = party("gateway").secret
BOX = party("box on the lot").secret
IDLE = party("box on no lot").secret
AUDITOR = party("auditor")
CALM, HIGH = 500, 1000  # centi-°C: inside the profile's 2..8 °C, and above it


class Site:
    """A cloud with a gateway and two registered boxes, and the batches it has sent."""

    def __init__(self, ledger: Cloud) -> None:
        self.cloud = ledger
        self.prev = batch.GENESIS_PREV
        self.seq = 0
        self.box_seq = {BOX: 0, IDLE: 0}

    async def register(self) -> None:
        now = int(time.time())
        for change in (
            registry.GatewayRegistration(schnorr.pubkey(GW), now, site="w1"),
            registry.BoxRegistration(schnorr.pubkey(BOX), now, site="w1", label="lot box"),
            registry.BoxRegistration(schnorr.pubkey(IDLE), now, site="w1", label="idle"),
        ):
            status, answer = await self.cloud.change(change)
            assert status == 201, answer

    async def send(
        self, box: bytes, start_s: int, values: list[int], humidity: list[int] | None = None
    ) -> int:
        """Upload one batch of `box`'s readings a minute apart from start_s (centi-°C, and
        centi-% humidity: 50 % unless given); return its log index."""
        wires = []
        for i, value in enumerate(values):
            rh = 5000 if humidity is None else humidity[i]
            wires.append(reading.sign(box, self.box_seq[box], start_s + 60 * i, value, rh))
            self.box_seq[box] += 1
        header = batch.seal(GW, self.seq, self.prev, wires)
        status, receipt = await self.cloud.upload(header.encode() + b"".join(wires))
        assert status == 201, receipt
        self.prev, self.seq = header.hash(), self.seq + 1
        return int(receipt["log_index"])


def signed(who: Party, tx_type: str, args: dict[str, Any]) -> tx.SignedTx:
    return tx.make("lots", tx_type, args, who.secret)


def admit(who: Party, role: str, name: str, owner_keys: list[str] | None = None) -> tx.SignedTx:
    args = admission(who, role, name)
    if owner_keys:
        args["owner_keys"] = owner_keys
    return tx.make("participants", "admit", args, REGULATOR.secret)


async def quality(ledger: Cloud, lot: str = "L1") -> dict[str, Any]:
    status, facts = await ledger.get(f"/v1/lots/{GTIN}/{lot}")
    assert status == 200, facts
    return dict(facts["records"]["quality"]["value"])


async def history(ledger: Cloud, who: Party | None, lot: str = "L1") -> tuple[int, Any]:
    headers = {}
    if who is not None:
        headers["Authorization"] = f"Bearer {(await sign_in(ledger, who))['token']}"
    url = ledger.url(f"/v1/lots/{GTIN}/{lot}/history")
    async with ledger.session.get(url, headers=headers) as r:
        return r.status, await r.json()


async def entries(ledger: Cloud, start: int) -> list[bytes]:
    store = ledger.server.app[CONTRACTS].shared.store
    return await store.entries(start, await store.log_size())


async def granted(ledger: Cloud) -> None:
    """The regulator grants AUDITOR the replay of both contracts (a 0x06 grant-add)."""
    change = config_entry.ConfigChange(
        config_entry.GRANT_ADD, int(time.time()), key=AUDITOR.xonly,
        contracts=("lots", "participants"),
    )  # fmt: skip
    request = config_entry.sign_request(REGULATOR.secret, change)
    status, answer = await ledger.post(
        "/v1/config", json.dumps(request).encode(), "application/json"
    )
    assert status == 201, answer


async def shipped(ledger: Cloud) -> tuple[Site, int]:
    """Register the gateway and boxes; admit M (controlling the registry owner's key), D and
    R; M commissions L1 and ships it to D as S1 with BOX attached. Return the site and the
    window's first second."""
    site = Site(ledger)
    await site.register()
    owner = schnorr.pubkey(OWNER).hex()
    await applied(ledger, admit(M, "manufacturer", "M", [owner]))
    await applied(ledger, admit(D, "distributor", "D"))
    await applied(ledger, admit(R, "retailer", "R"))
    await applied(ledger, commission("L1", 100))
    await applied(ledger, ship(M, "L1", "S1", D, 100))
    start_ms = int(time.time() * 1000) + 1000
    box = schnorr.pubkey(BOX).hex()
    attach = {"box": box, "shipment": "S1", "start": start_ms, "end": None}
    await applied(ledger, signed(M, "attach", attach))
    return site, -(-start_ms // 1000)


async def test_an_excursion_quarantines_the_lot_by_itself_until_a_signed_dispose(
    cloud: Cloud,  # noqa: F811
) -> None:
    site, t0 = await shipped(cloud)
    _, before = await cloud.get("/v1/state")

    calm = await site.send(BOX, t0, [CALM] * 10)
    assert await log_size(cloud) == calm + 1  # a batch that changed nothing: no 0x04
    assert (await cloud.get("/v1/state"))[1] == before
    assert (await quality(cloud))["status"] == "released"

    hot = await site.send(BOX, t0 + 600, [HIGH] * 20)  # 19 min above 8 °C: past the delay
    after = await entries(cloud, hot)
    assert len(after) == 2 and after[1][0] == stateroot.KIND  # the 0x04 right after it
    root = stateroot.parse(after[1])
    _, head = await cloud.get("/v1/state")
    assert head == {"root": root.root.hex(), "records": root.records, "covers": hot,
                    "index": hot + 1}  # fmt: skip
    found = await quality(cloud)
    assert (found["status"], found["source"]) == ("quarantined", "cold-chain"), found
    assert found["since"] == (t0 + 600 + 900) * 1000  # raised at the delay, by reading times

    again = await site.send(BOX, t0 + 1800, [CALM] * 10)  # calm again: never lifts it
    assert await log_size(cloud) == again + 1
    assert (await quality(cloud))["status"] == "quarantined"

    dispose = {"gtin": GTIN, "lot": "L1", "outcome": "released", "reason": "stability data"}
    await applied(cloud, signed(M, "dispose", dispose))
    assert (await quality(cloud))["status"] == "released"
    later = await site.send(BOX, t0 + 2400, [CALM] * 5)  # the same verdict: no quarantine
    assert await log_size(cloud) == later + 1
    assert (await quality(cloud))["status"] == "released"


async def test_batches_of_boxes_on_no_lot_add_no_state_root(cloud: Cloud) -> None:  # noqa: F811
    site, t0 = await shipped(cloud)
    _, before = await cloud.get("/v1/state")
    idle = await site.send(IDLE, t0, [HIGH] * 30)  # an excursion, on no lot
    early = await site.send(BOX, t0 - 7200, [HIGH] * 30)  # before its window: no reading counts
    assert await log_size(cloud) == early + 1 and early == idle + 1
    assert (await cloud.get("/v1/state"))[1] == before
    assert (await quality(cloud))["status"] == "released"


async def test_an_attach_needs_the_box_owner_key(cloud: Cloud) -> None:  # noqa: F811
    site = Site(cloud)
    await site.register()
    await applied(cloud, admit(M, "manufacturer", "M"))  # controls no owner key
    await applied(cloud, admit(D, "distributor", "D"))
    await applied(cloud, commission("L1", 10))
    await applied(cloud, ship(M, "L1", "S1", D, 10))
    start = int(time.time() * 1000) + 1000
    args = {"box": schnorr.pubkey(BOX).hex(), "shipment": "S1", "start": start, "end": None}
    status, problem = await cloud.post(
        "/v1/tx", signed(M, "attach", args).to_wire(), "application/json"
    )
    assert (status, problem["reason"]) == (403, "owner"), problem
    args["box"] = party("never registered").xonly.hex()
    status, problem = await cloud.post(
        "/v1/tx", signed(M, "attach", args).to_wire(), "application/json"
    )
    assert (status, problem["reason"]) == (409, "box"), problem


async def test_history_from_the_aggregates_as_the_read_policy_shows_it(
    cloud: Cloud,  # noqa: F811
) -> None:
    site, t0 = await shipped(cloud)
    await site.send(BOX, t0, [CALM] * 10 + [HIGH] * 20, [4000] * 10 + [6500] * 20)
    await applied(cloud, receive(D, "S1", 100))

    status, full = await history(cloud, M)  # manufacturer: yes, and every leg
    assert status == 200, full
    (leg,) = full["legs"]
    assert (leg["leg"], leg["shipment"], leg["sender"], leg["receiver"]) == (
        "shipment:S1", "S1", M.did, D.did,
    )  # fmt: skip
    assert leg["boxes"] == [schnorr.pubkey(BOX).hex()] and leg["end"] is not None
    chain = full["coldchain"]
    overall = chain["overall"]
    assert overall["count"] == 30
    assert (overall["min_c"], overall["max_c"]) == (5.0, 10.0)
    assert overall["mean_c"] == pytest.approx((10 * 5 + 20 * 10) / 30)
    assert (overall["min_rh"], overall["max_rh"]) == (40.0, 65.0)  # from the signed readings
    assert overall["mean_rh"] == pytest.approx((10 * 40 + 20 * 65) / 30)
    assert chain["legs"][0]["max_rh"] == 65.0
    assert 5.0 < overall["mkt_c"] < 10.0
    assert overall["time_out_of_range_s"] > 900
    assert [e["kind"] for e in chain["excursions"]][:1] == ["high"]
    assert chain["legs"][0]["leg"] == "shipment:S1" and chain["verdict"].startswith("excursion")
    assert full["quality"]["status"] == "quarantined"
    assert full["state"] == (await cloud.get("/v1/state"))[1]

    status, regulator = await history(cloud, REGULATOR)  # quality yes, legs no: no custody
    assert status == 200, regulator
    assert regulator["legs"][0]["leg"] == "leg 1" and "sender" not in regulator["legs"][0]
    assert regulator["coldchain"]["overall"] == overall
    assert "box" not in regulator["coldchain"]["excursions"][0]
    assert "verdict" not in regulator["coldchain"]
    assert M.did not in json.dumps(regulator) and "S1" not in json.dumps(regulator)

    status, public = await history(cloud, None)  # global only: the status alone
    assert status == 200 and set(public) == {"gtin", "lot", "quality", "state"}, public

    status, problem = await history(cloud, R)  # if involved, and it is not
    assert (status, problem["reason"]) == (403, "access"), problem
    assert "read: retailer × quality status = if involved" in problem["detail"]
    status, problem = await history(cloud, None, "NEVER")
    assert (status, problem["reason"]) == (404, "lot"), problem
    for path, reason in (
        (f"/v1/lots/{GTIN[:-1]}0/L1/history", "gtin"),  # a wrong check digit
        (f"/v1/lots/{GTIN}/{'L' * 21}/history", "lot"),  # over 20 characters
        (f"/v1/lots/{GTIN}/L%201/history", "lot"),  # a space: not in character set 82
    ):
        status, problem = await cloud.get(path)
        assert (status, problem["reason"]) == (400, reason), (path, problem)
    forged = {"Authorization": "Bearer v1.x.y"}
    async with cloud.session.get(cloud.url(f"/v1/lots/{GTIN}/L1/history"), headers=forged) as r:
        assert (r.status, (await r.json())["reason"]) == (401, "token")


async def test_a_restart_and_a_replay_reach_the_same_roots(
    tmp_path: Path, database: str | None
) -> None:
    config = settings(tmp_path / "cloud", database, regulators=(REGULATOR.xonly,))
    server, session = await start(config)
    cloud = Cloud(server, session)  # noqa: F811
    try:
        site, t0 = await shipped(cloud)
        await site.send(BOX, t0, [CALM] * 10)
        hot = await site.send(BOX, t0 + 600, [HIGH] * 20)
        await site.send(IDLE, t0, [HIGH] * 5)
        await applied(cloud, receive(D, "S1", 100))
        await site.send(BOX, t0 + 100_000, [HIGH] * 20)  # after the receive: outside the leg
        await granted(cloud)
        _, before = await cloud.get("/v1/state")
        _, told = await history(cloud, M)
    finally:
        await session.close()
        await server.close()

    server, session = await start(config)
    cloud = Cloud(server, session)
    try:
        assert (await cloud.get("/v1/state"))[1] == before
        assert (await history(cloud, M))[1] == told  # the aggregates rebuilt by replay
        assert (await quality(cloud))["status"] == "quarantined"
        url = cloud.url("").rstrip("/")
        async with aiohttp.ClientSession() as client:
            report = await replay(url, AUDITOR.secret, client)
        assert report.parted_at is None, report.render()
        assert report.replayed == 7 and report.roots == 8  # 7 transactions and the hot batch
        assert before["covers"] > hot  # the receive's 0x03 covers the last root
    finally:
        await session.close()
        await server.close()


async def test_the_history_command_signs_in_and_prints_what_the_cell_shows(
    cloud: Cloud,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site, t0 = await shipped(cloud)
    await site.send(BOX, t0, [HIGH] * 20)
    url = cloud.url("").rstrip("/")
    keys = {}
    for name, who in (("maker", M), ("retailer", R)):
        keys[name] = tmp_path / f"{name}.key"
        keys[name].write_text(who.secret.hex() + "\n")
    argv = ["lots", "history", "--gtin", GTIN, "--lot", "L1", "--cloud", url]
    assert await asyncio.to_thread(main, [*argv, "--key", str(keys["maker"])]) == 0
    out = capsys.readouterr().out
    assert "quarantined (cold-chain: cold chain: high excursion" in out
    assert "shipment:S1" in out and "20 readings, min 10.00 max 10.00" in out
    assert "humidity min 50.00 max 50.00 mean 50.00 %" in out
    assert await asyncio.to_thread(main, argv) == 0  # the public: the status alone
    assert "not shown (sign in" in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*argv, "--key", str(keys["retailer"])]) == 1
    assert "HTTP 403: access: read: retailer × quality status" in capsys.readouterr().err
    assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"]["status"] == "quarantined"


async def test_equivocating_readings_never_reach_the_cold_chain_live_or_on_replay(
    cloud: Cloud,  # noqa: F811
) -> None:
    site, t0 = await shipped(cloud)
    await site.send(BOX, t0, [CALM] * 20)  # seqs 0..19
    site.box_seq[BOX] = 0  # the same seqs signed again, other bytes: 30 s later, too warm
    again = await site.send(BOX, t0 + 30, [HIGH] * 20)
    assert await log_size(cloud) == again + 1  # the ledger's readings are the first ones
    assert (await quality(cloud))["status"] == "released"
    _, seen = await history(cloud, M)
    assert (seen["coldchain"]["overall"]["count"], seen["coldchain"]["overall"]["max_c"]) == (
        20, 5.0,
    )  # fmt: skip
    await granted(cloud)
    async with aiohttp.ClientSession() as client:
        report = await replay(cloud.url("").rstrip("/"), AUDITOR.secret, client)
    assert report.parted_at is None and report.roots == 6, report.render()


async def test_two_worker_processes_on_one_postgresql_quarantine_by_readings(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """The attach reaches one `cloud serve` process, the batch another: the batch's worker
    follows the attach first, and both answer the quarantine and one root."""
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    data = tmp_path / "cloud"
    options = ("--database", postgres_dsn, "--owner", schnorr.pubkey(OWNER).hex())
    workers = [await start_cloud(data, *options, "--regulator", REGULATOR.did) for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as http:
            one, two = (Remote(url, http) for _, url in workers)
            site = Site(one)
            await site.register()
            owner = schnorr.pubkey(OWNER).hex()
            await applied(two, admit(M, "manufacturer", "M", [owner]))
            await applied(one, admit(D, "distributor", "D"))
            await applied(two, commission("L1", 100))
            await applied(one, ship(M, "L1", "S1", D, 100))
            start_ms = int(time.time() * 1000) + 1000
            attach = {"box": schnorr.pubkey(BOX).hex(), "shipment": "S1", "start": start_ms}
            await applied(two, signed(M, "attach", {**attach, "end": None}))
            hot = await site.send(BOX, -(-start_ms // 1000), [HIGH] * 20)  # to worker one
            states = [(await c.get("/v1/state"))[1] for c in (one, two)]
            assert states[0] == states[1] and states[0]["covers"] == hot, states
            for c in (one, two):
                assert (await quality(c))["status"] == "quarantined"
    finally:
        for proc, _ in workers:
            proc.terminate()
            proc.wait(timeout=30)


class Remote(Cloud):
    """A `cloud serve` process at `base`, spoken to as tests speak to a Cloud."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    def url(self, path: str) -> str:
        return self.base + path


async def test_the_holders_feed_tells_the_quarantine_the_readings_decided(
    cloud: Cloud,  # noqa: F811
) -> None:
    site, t0 = await shipped(cloud)
    hot = await site.send(BOX, t0, [HIGH] * 20)
    status, answer = await feed(cloud, D)  # D receives the lot in transit: a holder to tell
    assert status == 200, answer
    told = [e for e in answer["events"] if e["event"]["type"] == "quarantined"]
    assert len(told) == 1 and told[0]["index"] == hot and told[0]["tx"] == "", answer
    assert told[0]["event"]["reason"] == (await quality(cloud))["reason"]


@pytest.mark.parametrize(
    ("role", "involved", "column", "holder", "sees"),
    [
        ("manufacturer", False, "flow_m_to_d", False, True),  # yes on every leg
        ("regulator", False, "flow_m_to_d", False, False),  # its leg cells are no
        ("retailer", True, "flow_m_to_d", False, False),  # M→D is no for a retailer
        ("retailer", True, "flow_d_to_r", False, True),  # D→R yes
        ("pharmacy", True, "flow_d_to_r", False, False),
        ("retailer", True, None, True, True),  # its own storage
        ("retailer", True, None, False, False),  # another holder's storage
        ("distributor", False, None, False, True),  # yes on every leg
    ],
)
def test_who_held_a_leg_follows_its_flow_cell(
    role: str, involved: bool, column: str | None, holder: bool, sees: bool
) -> None:
    assert policy.sees_leg(role, involved, column, holder) is sees
    assert policy.history_view(role, involved) in (policy.COLDCHAIN, None)
