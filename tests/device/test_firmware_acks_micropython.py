"""Acknowledgements that cannot lose readings (issue 10 §4), with the firmware under the real
MicroPython and, where a gateway is needed, the real gateway core and MQTT ingest
(gateway/service.py, gateway/ingest_mqtt.py) on a real private Mosquitto:

- a broker that acknowledges one PUBLISH and loses it (a TCP proxy that answers the box's
  PUBLISH with a PUBACK itself and never forwards it): the box resends exactly that
  reading and the gateway accepts it although it is older than what it has;
- a box rebooted mid-block (a seq gap) loses nothing and resends nothing;
- forged, unsigned, wrong-owner and expired certificates and acks are ignored and counted;
- a resend that got no ack waits twice as long each time, up to max_resend_s.

Only the DHT22 is simulated (device/simsensor.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from device import ack, cert, schnorr, topics
from gateway import settings as gw_settings
from gateway.ingest_mqtt import MqttIngest
from gateway.registry import Box, Registry
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import Mosquitto, free_port
from tests.device.receiver import (
    OWNER,
    OWNER_SECRET,
    Receiver,
    certify_gateway,
    running,
    stop,
)
from tests.device.test_firmware_micropython import KEY, SECRET, SITE, finish, start_box

# -- a broker that loses one acknowledged PUBLISH -------------------------------------------


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """Read one whole MQTT packet (fixed header, remaining length, body)."""
    head = await reader.readexactly(2)
    n, shift, x, length = head[1] & 0x7F, 7, head[1], bytearray(head)
    while x & 0x80:
        x = (await reader.readexactly(1))[0]
        length.append(x)
        n |= (x & 0x7F) << shift
        shift += 7
    return bytes(length) + await reader.readexactly(n)


class LossyProxy:
    """Between box and broker: forwards whole packets both ways, but answers the box's
    `drop_at`-th QoS 1 PUBLISH of a reading with a PUBACK itself and forwards nothing,
    as a broker that acknowledged a message and then lost it (a dropped session) would."""

    def __init__(self, upstream: int, drop_at: int) -> None:
        self.upstream = upstream
        self.drop_at = drop_at
        self.readings = 0
        self.dropped: bytes | None = None
        self.port = free_port()

    async def __aenter__(self) -> LossyProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def _serve(self, box_r: asyncio.StreamReader, box_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.upstream)

        async def down() -> None:
            while True:
                box_w.write(await read_packet(broker_r))
                await box_w.drain()

        async def up() -> None:
            while True:
                packet = await read_packet(box_r)
                if packet[0] & 0xF0 == 0x30 and packet[0] & 0x06 == 0x02:
                    off = 2  # after the remaining-length varint
                    while packet[off - 1] & 0x80:
                        off += 1
                    tl = int.from_bytes(packet[off : off + 2], "big")
                    topic = packet[off + 2 : off + 2 + tl]
                    pid = packet[off + 2 + tl : off + 4 + tl]
                    if topic.endswith(b"/reading"):
                        self.readings += 1
                        if self.readings == self.drop_at:
                            self.dropped = packet[off + 4 + tl :]
                            box_w.write(b"\x40\x02" + pid)  # PUBACK from "the broker"
                            await box_w.drain()
                            continue
                broker_w.write(packet)
                await broker_w.drain()

        tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            box_w.close()
            broker_w.close()


@asynccontextmanager
async def real_gateway(broker: Mosquitto, data: Path) -> AsyncIterator[Gateway]:
    """The gateway core and its MQTT ingest, as `gateway run` assembles them, certified by
    the test owner, with the test box registered."""
    cert_path = certify_gateway(data, SITE)
    s = gw_settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(data), "certificate": str(cert_path)},
            "mqtt": {"port": broker.port, "client_id": "test-gateway"},
            "spool": {"commit_interval_s": 0.01},
            "status": {"port": 0},
        }
    )
    reg = Registry(data / "registry.json")
    reg.put(Box(KEY, "cold room", SITE))
    from gateway.app import load_or_create_key

    gateway = Gateway(
        s, reg, Spool(data / "spool.sqlite"), load_or_create_key(data / "gateway.key")
    )
    await gateway.start()
    ingest = MqttIngest(gateway)
    task = asyncio.create_task(ingest.run())
    try:
        for _ in range(100):
            if ingest.connects:
                break
            await asyncio.sleep(0.05)
        yield gateway
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await gateway.stop()
        gateway.spool.close()
        reg.close()


def stored_seqs(data: Path) -> list[int]:
    db = sqlite3.connect(data / "spool.sqlite")
    try:
        return [s for (s,) in db.execute("SELECT seq FROM readings ORDER BY seq")]
    finally:
        db.close()


def counters(out: str) -> tuple[int, int, int, int]:
    """(resends, resend_wait, missing_resent, rejected_certs) from the box's RESENDS line."""
    line = next(x for x in out.splitlines() if x.startswith("RESENDS"))
    a, b, c, d = (int(x) for x in line.split()[1:])
    return a, b, c, d


async def test_a_publish_the_broker_lost_is_resent_exactly_and_accepted(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with (
        real_gateway(mosquitto, tmp_path / "gw") as gateway,
        LossyProxy(mosquitto.port, drop_at=12) as proxy,
    ):
        out = await finish(
            await start_box(mosquitto, tmp_path / "box", count=30, port=proxy.port, drain=20),
            timeout=90,
        )
        assert proxy.dropped is not None, "the proxy dropped one reading"
        lost = int.from_bytes(proxy.dropped[33:37], "big")
        await asyncio.sleep(0.3)
        assert stored_seqs(tmp_path / "gw") == list(range(30)), out  # the lost one arrived
        assert gateway.ranges[KEY] == ((0, 29),)
        # Exactly the missing reading was resent: nothing else arrived twice.
        assert gateway.counts["duplicate"] == 0, gateway.counts
        assert gateway.counts["accepted"] == 30
        resends, _, missing_resent, _ = counters(out)
        assert (resends, missing_resent) == (0, 1), out
        assert out.strip().endswith("DONE 30 0 0")
        assert 0 < lost < 29


async def test_a_box_rebooted_mid_block_loses_nothing_and_resends_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with real_gateway(mosquitto, tmp_path / "gw") as gateway:
        first = await finish(await start_box(mosquitto, tmp_path / "box", count=10))
        # A reboot: a new process on the same flash; seq_block 4, so 10 and 11 are skipped.
        second = await finish(await start_box(mosquitto, tmp_path / "box", count=10))
        await asyncio.sleep(0.3)
        assert stored_seqs(tmp_path / "gw") == [*range(10), *range(12, 22)]
        assert gateway.ranges[KEY] == ((0, 9), (12, 21))  # the gap is in no range
        assert gateway.counts["duplicate"] == 0, gateway.counts  # nothing resent
        for out in (first, second):
            assert out.strip().endswith("DONE 10 0 0"), out
            assert counters(out)[:3] == (0, 2, 0)  # no resend of any kind
    # The acks the box got named both ranges: decode the retained one.
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe(topics.ack(SITE, topics.device_id(KEY)), 1)
        message = await asyncio.wait_for(anext(aiter(client.messages)), 5)
    assert ack.parse(bytes(message.payload))[1] == [(0, 9), (12, 21)]  # type: ignore[arg-type]


OFFLINE = """
import asyncio
from binascii import unhexlify
from device import config, firmware
from device.board_sim import Board
cfg = config.validate({"site": %(site)r, "owner_key": %(owner)r})
board = Board(%(data)r, quiet=True)
box = firmware.Box(board, cfg, unhexlify(%(secret)r), 0)
for _ in range(5):
    asyncio.run(box.take_reading())
def state(what):
    print(what, len(box.backlog), box.rejected_certs, box.rejected_acks, box.gateway_error)
for name, hexed in %(certs)r:
    box.handle_cert(unhexlify(hexed))
    state("cert-" + name)
for name, hexed in %(acks)r:
    box.handle_ack(unhexlify(hexed))
    state("ack-" + name)
print("STATUS", box.status().decode())
"""


def offline_box(run, data: Path, certs: list, acks: list) -> tuple[dict[str, list[str]], str]:
    """Run OFFLINE under MicroPython; return its state lines by name, and its output."""
    out = run(
        OFFLINE
        % {
            "site": SITE,
            "owner": OWNER,
            "data": str(data),
            "secret": SECRET.hex(),
            "certs": certs,
            "acks": acks,
        }
    )
    return {x.split()[0]: x.split(maxsplit=4)[1:] for x in out.splitlines() if x}, out


def test_forged_unsigned_wrong_owner_and_expired_certificates_and_acks_are_ignored(
    tmp_path: Path, run_micropython
) -> None:
    now = int(time.time())
    gw_secret = bytes(31) + b"\x51"
    gw = schnorr.pubkey(gw_secret)
    stranger = bytes(31) + b"\x52"
    wrong_owner = cert.encode(stranger, gw, SITE, now - 60, now + 86400)
    expired = cert.encode(OWNER_SECRET, gw, SITE, now - 86400, now - 60)
    forged = bytearray(cert.encode(stranger, gw, SITE, now - 60, now + 86400))
    forged[1:33] = bytes.fromhex(OWNER)  # claims the box's owner; signed by another
    good = cert.encode(OWNER_SECRET, gw, SITE, now - 60, now + 86400)
    all_five = [(0, 4)]
    certs = [
        ("wrong-owner", wrong_owner.hex()),
        ("expired", expired.hex()),
        ("forged", bytes(forged).hex()),
    ]
    acks = [
        ("uncertified", ack.encode(all_five, KEY, gw_secret).hex()),  # no valid cert yet
        ("unsigned-v1", (0).to_bytes(4, "big").hex()),  # 4 bytes, the old format
        ("garbage", (b"\x02" + bytes(90)).hex()),
    ]
    lines, out = offline_box(run_micropython, tmp_path / "box", certs, acks)
    assert lines["cert-wrong-owner"][:2] == ["5", "1"]
    assert "owner: signed by" in lines["cert-wrong-owner"][3]
    assert lines["cert-expired"][:2] == ["5", "2"] and "expired" in lines["cert-expired"][3]
    assert lines["cert-forged"][:2] == ["5", "3"] and "signature" in lines["cert-forged"][3]
    assert lines["ack-uncertified"][:3] == ["5", "3", "1"]
    assert lines["ack-unsigned-v1"][:3] == ["5", "3", "2"]
    assert lines["ack-garbage"][:3] == ["5", "3", "3"]  # every reading still held
    assert '"gateway_error": "ack rejected: no verified gateway certificate"' in out
    assert '"ack": 2' in out and '"rejected_certs": 3' in out
    # The same acknowledgement after the owner's certificate of that gateway: believed.
    certified = ack.encode(all_five, KEY, gw_secret)
    lines, out = offline_box(
        run_micropython, tmp_path / "box2", [("good", good.hex())], [("certified", certified.hex())]
    )
    assert lines["cert-good"] == ["5", "0", "0", "None"]
    assert lines["ack-certified"] == ["0", "0", "0", "None"]
    assert f'"gateway": "{SITE}"' in out


async def test_resends_without_an_ack_back_off_doubling_to_the_cap(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A gateway that never acknowledges: the box resends after 1 s, then 2 s, then 4 s
    (max_resend_s) and 4 s again, instead of every second."""
    receiver = Receiver(mosquitto.port, SITE, acking=False)
    task = await running(receiver)
    try:
        started = time.monotonic()
        proc = await start_box(
            mosquitto, tmp_path / "box", count=2, drain=12.5, ack_timeout=1, max_resend=4
        )
        out = await finish(proc, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        await stop(task)
    resends, wait, _, _ = counters(out)
    # Resends near 1, 3, 7 and 11 s: four, where a fixed 1 s timer would make about twelve.
    assert 3 <= resends <= 4, (resends, elapsed, out)
    assert wait == 4  # capped at max_resend_s
    assert len(receiver.arrivals) == 2 * (1 + resends)
