"""Registry changes (gateway/registry_change.py and the stores' registry writes): every field is
checked where it enters, with its range, and a signed request is applied exactly once
however many copies arrive at once, at however many workers (issue 10, section 2)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud.api.app import make_app
from cloud.log import tlog
from cloud.storage.store import Store, StoreConflict
from device import schnorr
from gateway import config_entry
from gateway import registry_change as registry
from gateway.refusal import INT64_MAX
from tests.cloud.api.test_app import OWNER, settings
from tests.cloud.services.test_ingest import BOX

NOW = int(time.time())
KEY = schnorr.pubkey(BOX)
COPIES = 16


@pytest.mark.parametrize(
    ("fields", "reason", "detail"),
    [
        ({"time": 10**19}, "time", f"got 10000000000000000000, want an integer 0 to {INT64_MAX}"),
        ({"time": -5}, "time", f"got -5, want an integer 0 to {INT64_MAX}"),
        ({"time": 1.0}, "time", f"got float, want an integer 0 to {INT64_MAX}"),
        ({"start": 2**63}, "start", f"got {2**63}, want an integer 0 to {INT64_MAX}"),
        ({"start": None}, "start", f"got NoneType, want an integer 0 to {INT64_MAX}"),
        ({"end": NOW}, "end", f"got {NOW}, want an integer {NOW + 1} to {INT64_MAX}"),
        ({"end": 2**64}, "end", f"got {2**64}, want an integer {NOW + 1} to {INT64_MAX}"),
        ({"end": False}, "end", f"got bool, want an integer {NOW + 1} to {INT64_MAX}"),
        ({"subject": "lot\n7"}, "subject", "got control character '\\n', want printable text"),
        ({"subject": "x" * 201}, "subject", "got 201 characters, want 1 to 200"),
        ({"subject": ""}, "subject", "got 0 characters, want 1 to 200"),
    ],
)
def test_each_field_is_checked_with_its_range(fields: dict, reason: str, detail: str) -> None:
    change = {"op": "attach", "key": KEY.hex(), "subject": "LOT-7", "start": NOW, "end": None}
    change["time"] = NOW
    change.update(fields)
    with pytest.raises(registry.RegistryError) as e:
        registry.parse_change(change)
    assert (e.value.reason, e.value.detail, e.value.status) == (reason, detail, 400)


def test_the_largest_values_a_database_holds_are_accepted() -> None:
    change = registry.Attachment(
        KEY, INT64_MAX, subject="LOT-7", start=INT64_MAX - 1, end=INT64_MAX
    )
    assert registry.parse_change(json.loads(change.canonical())) == change


def test_a_registry_entry_is_read_within_the_json_limits() -> None:
    owner, signature = bytes(32), bytes(64)
    deep = b"[" * 100_000
    with pytest.raises(registry.RegistryError) as e:
        registry.parse_entry(owner + signature + deep)
    assert e.value.reason == "entry" and "got 100000 bytes, want at most 16384" in str(e.value)


OPS = ("attach", "box", "gateway")


def change_of(op: str, now: int) -> registry.Change:
    """A signed change of each op, timed `now`: when the test runs, not when it was
    collected (a request more than 300 s off the clock is refused)."""
    return {
        "gateway": registry.GatewayRegistration(bytes(31) + b"\x51", now, site="w2"),
        "box": registry.BoxRegistration(bytes(31) + b"\x52", now, site="w2", label="door"),
        "attach": registry.Attachment(KEY, now, subject="LOT-9", start=now, end=None),
    }[op]


@pytest.mark.parametrize("op", OPS)
async def test_copies_sent_at_once_to_two_workers_are_applied_once(
    tmp_path: Path, database: str | None, op: str
) -> None:
    # Two apps on one database (SQLite: one file; PostgreSQL: one schema), as two workers
    # behind a load balancer; each copy goes to one of them, all at once.
    config = settings(tmp_path / "cloud", database)
    workers = [TestServer(make_app(config), host="127.0.0.1") for _ in range(2)]
    for worker in workers:
        await worker.start_server()
    try:
        async with aiohttp.ClientSession() as http:

            async def post(worker: TestServer, data: bytes) -> tuple[int, dict]:
                async with http.post(worker.make_url("/v1/registry"), data=data) as r:
                    return r.status, await r.json(content_type=None)

            now = int(time.time())
            box = registry.BoxRegistration(KEY, now, site="w1", label="")
            assert (await post(workers[0], _signed(box)))[0] == 201
            request = _signed(change_of(op, now))
            answers = await asyncio.gather(*(post(workers[i % 2], request) for i in range(COPIES)))
            statuses = sorted(status for status, _ in answers)
            assert statuses == [201] + [409] * (COPIES - 1), answers
            assert {a["reason"] for status, a in answers if status == 409} == {"replayed"}
            (index,) = [a["log_index"] for status, a in answers if status == 201]

            async with http.get(workers[1].make_url("/v1/log/entries?start=0")) as r:
                entries = [bytes.fromhex(e) for e in (await r.json())["entries"]]
            _, entry = registry.open_request(json.loads(request), [schnorr.pubkey(OWNER)])
            assert entries.count(entry) == 1 and entries[index] == entry
            # the owners' bootstrap, the box, then this change: nothing else
            assert len(entries) == 3 and tlog.parse_entry(entries[0])[0] == "config"
            assert tlog.parse_entry(entries[index])[0] == "registry"
            applied = 0
            for worker in workers:
                async with http.get(worker.make_url("/metrics")) as r:
                    text = await r.text()
                applied += int(
                    float(text.split("\npharmasync_registry_changes_total ")[1].split()[0])
                )
            assert applied == 2  # the box, and one of the copies
            if op == "attach":
                async with http.get(
                    workers[0].make_url(f"/v1/devices/{KEY.hex()}/attachments")
                ) as r:
                    assert await r.json() == [{"subject": "LOT-9", "start": now, "end": None}]
    finally:
        for worker in workers:
            await worker.close()


def _signed(change: registry.Change) -> bytes:
    return json.dumps(registry.sign_request(OWNER, change)).encode()


async def test_a_store_appends_one_registry_entry_once_however_many_ask(store: Store) -> None:
    now = int(time.time())
    gateway = change_of("gateway", now)
    _, entry = registry.open_request(registry.sign_request(OWNER, gateway), [schnorr.pubkey(OWNER)])
    key = gateway.key
    bootstrap = config_entry.bootstrap_entry([schnorr.pubkey(OWNER)], now)
    assert await store.append_config(bootstrap) == 0  # the owner is one on the log
    results = await asyncio.gather(
        *(store.register_gateway(key, "w2", entry) for _ in range(COPIES)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, int)] == [1]
    conflicts = [r for r in results if not isinstance(r, int)]
    assert len(conflicts) == COPIES - 1
    assert all(isinstance(c, StoreConflict) and c.reason == "replayed" for c in conflicts)
    assert await store.log_size() == 2 and await store.entries(0, 9) == [bootstrap, entry]
    # Another op carrying the same entry is the same replay.
    with pytest.raises(StoreConflict, match="replayed"):
        await store.register_device(key, "w2", "", entry)
    assert await store.log_size() == 2
