"""The gateway core's acknowledgements: version 2 by committed ranges (memoised per commit,
capped to fit a BLE write), version 1 for boxes whose status reports old firmware, and the
certificate presented once per MQTT session. Real spool; real Mosquitto where MQTT is."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress
from pathlib import Path

import aiomqtt

from device import ack, ble, cert, reading, schnorr, topics
from gateway import settings as gw_settings
from gateway.ingest_mqtt import MqttIngest
from gateway.registry import Box, Registry
from gateway.service import Gateway, load_certificate
from gateway.spool import Spool
from tests.conftest import Mosquitto

BOX_SECRET = bytes(31) + b"\x61"
BOX = schnorr.pubkey(BOX_SECRET)
DEV = topics.device_id(BOX)
GW_SECRET = bytes(31) + b"\x62"
OWNER_SECRET = bytes(31) + b"\x63"
NOW = int(time.time())


def make_gateway(tmp: Path, port: int = 1883, cert_file: Path | None = None) -> Gateway:
    raw: dict = {
        "gateway": {"site": "t", "data_dir": str(tmp)},
        "mqtt": {"port": port, "client_id": "svc-test"},
        "spool": {"commit_interval_s": 0.0},
    }
    if cert_file is not None:
        raw["gateway"]["certificate"] = str(cert_file)
    tmp.mkdir(parents=True, exist_ok=True)
    reg = Registry(tmp / "registry.json")
    reg.put(Box(BOX, "fridge", "t"))
    return Gateway(gw_settings.from_dict(raw), reg, Spool(tmp / "spool.sqlite"), GW_SECRET)


def signed(seq: int) -> bytes:
    return reading.sign(BOX_SECRET, seq, NOW, 450, 5000, aux=bytes(32))


async def deliver_all(gw: Gateway, seqs: list[int]) -> list[bytes | None]:
    done = [await gw.receive(signed(s), "test", DEV) for s in seqs]
    await gw.flush()
    return [await d for d in done]


async def test_acks_are_ranges_memoised_per_commit(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    payloads = await deliver_all(gw, [0, 1, 2, 5, 6])
    assert len({id(p) for p in payloads}) == 1  # one payload (one signature) for the commit
    assert ack.decode(payloads[0], BOX, {ack.gateway_id(gw.key): gw.key}) == [(0, 2), (5, 6)]
    (again,) = await deliver_all(gw, [3])  # the older seq never stored: accepted
    assert ack.parse(again)[1] == [(0, 3), (5, 6)]
    await gw.stop()
    gw.spool.close()
    reopened = Spool(tmp_path / "spool.sqlite")  # the ranges are durable
    assert reopened.committed_ranges() == {BOX: ((0, 3), (5, 6))}
    reopened.close()


async def test_many_ranges_are_capped_to_one_ble_write_and_old_ones_on_demand(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path)
    await deliver_all(gw, [i * 3 for i in range(40)])  # 40 ranges: every third seq
    newest = gw.ack_payload(BOX)
    assert len(ble.encode_ack(newest)) <= ble.WRITE_MAX
    assert ack.parse(newest)[1] == [(i * 3, i * 3) for i in range(19, 40)]
    (dup,) = await deliver_all(gw, [6])  # a resent old one: the ack covers it
    assert ack.parse(dup)[1][0] == (6, 6) and len(ack.parse(dup)[1]) == ack.MAX_RANGES
    assert gw.counts["duplicate"] == 1
    await gw.stop()


async def test_boxes_reporting_old_firmware_get_version_1(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    await deliver_all(gw, [0, 1, 2, 5])
    old = json.dumps({"state": "online", "seq": 5, "fw": "0.1.0"}).encode()
    gw.box_status(DEV, old)
    assert ack.decode_v1(gw.ack_payload(BOX), BOX, gw.key) == 5  # signed (sign_acks)
    gw.box_status(DEV, json.dumps({"state": "offline"}).encode())  # a will says nothing
    assert len(gw.ack_payload(BOX)) == ack.V1_SIGNED_SIZE
    gw.box_status(DEV, json.dumps({"state": "online", "ack": 2, "fw": "0.2.0"}).encode())
    assert ack.parse(gw.ack_payload(BOX))[1] == [(0, 2), (5, 5)]
    gw.box_status(DEV, b"{" * 100_000)  # malformed: ignored, nothing changes
    assert gw.ack_version(BOX) == 2
    cut = json.dumps({"state": "online", "label": "x" * 300}).encode()[:240]
    gw.box_status(DEV, cut)  # firmware 0.1's status read over BLE, cut at 240 bytes
    assert gw.ack_version(BOX) == 1
    await gw.stop()


async def test_mqtt_sends_v1_to_old_firmware_and_the_certificate_once_per_session(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    cert_file = tmp_path / "gateway.cert"
    gw_key = schnorr.pubkey(GW_SECRET)
    cert_file.write_text(cert.encode(OWNER_SECRET, gw_key, "t", NOW - 60, NOW + 3600).hex())
    gw = make_gateway(tmp_path / "gw", mosquitto.port, cert_file)
    assert gw.certificate is not None
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as box:
        # A box on firmware 0.1: its retained status has no "ack" field.
        status = {"state": "online", "seq": 1, "fw": "0.1.0"}
        await box.publish(topics.status("t", DEV), json.dumps(status).encode(), 1, retain=True)
        await box.subscribe(topics.ack("t", DEV), 1)
        await box.subscribe(topics.cert("t"), 1)
        await gw.start()
        ingest = MqttIngest(gw)
        task = asyncio.create_task(ingest.run())
        try:
            got: dict[str, bytes] = {}

            async def collect() -> None:
                async for m in box.messages:
                    got[str(m.topic).rsplit("/", 1)[1]] = bytes(m.payload)  # type: ignore[arg-type]
                    if "ack" in got and "cert" in got:
                        return

            await asyncio.sleep(0.5)  # the gateway subscribes and reads the status
            await box.publish(topics.reading("t", DEV), signed(0), 1)
            await box.publish(topics.reading("t", DEV), signed(1), 1)
            await asyncio.wait_for(collect(), 10)
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await gw.stop()
    assert len(got["ack"]) == ack.V1_SIGNED_SIZE
    assert ack.decode_v1(got["ack"], BOX, gw_key) in (0, 1)  # the retained ack is version 1
    assert got["cert"] == bytes.fromhex(cert_file.read_text())  # retained, once per session
    assert ingest.connects == 1


def test_a_certificate_for_another_key_or_site_is_reported(tmp_path: Path, caplog) -> None:
    s = gw_settings.from_dict(
        {"gateway": {"site": "t", "data_dir": str(tmp_path), "certificate": "c.hex"}}, tmp_path
    )
    path = tmp_path / "c.hex"
    gw_key = schnorr.pubkey(GW_SECRET)
    path.write_text(cert.encode(OWNER_SECRET, gw_key, "other", NOW - 60, NOW + 60).hex())
    assert load_certificate(s, gw_key) is not None  # presented: boxes say why they refuse
    assert "site: got 'other', want 't'" in caplog.text
    path.write_text(cert.encode(OWNER_SECRET, gw_key, "t", NOW - 60, NOW + 60).hex())
    assert load_certificate(s, bytes(32)) is not None and "gateway key: got" in caplog.text
    assert load_certificate(s, gw_key, now=NOW + 120) is not None and "expired" in caplog.text
    path.write_text("zz")
    assert load_certificate(s, gw_key) is None and "unusable" in caplog.text


async def test_a_byte_identical_copy_is_a_duplicate_at_once_and_other_bytes_are_judged(
    tmp_path: Path,
) -> None:
    """A resent copy of an accepted reading needs no second signature check (Gateway.
    _known_copy): acknowledged at once, without a trip to the verification pool; the same
    seq with other bytes still goes through every check."""
    gw = make_gateway(tmp_path)
    await deliver_all(gw, [0, 1])
    copy = gw.submit(signed(1), "test", DEV)
    assert copy.done() and copy.result() == gw.ack_payload(BOX, 1)
    waiting = gw.submit(signed(2), "test", DEV)  # new: to the pool, then pending
    await gw.verify_pool.judged()
    pending_copy = gw.submit(signed(2), "test", DEV)  # a copy of a reading not yet committed
    assert not pending_copy.done()  # acknowledged with its first copy, after the commit
    other = gw.submit(reading.sign(BOX_SECRET, 1, NOW, 999, 5000, aux=bytes(32)), "test", DEV)
    assert not other.done()  # different bytes: judged after the signature check
    await gw.verify_pool.judged()
    await gw.flush()
    assert await waiting is not None and await pending_copy is not None
    assert other.result() is None
    assert gw.counts == {"accepted": 3, "duplicate": 2, "seq reused": 1}
