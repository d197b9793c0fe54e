"""Drain after an outage (issue 13 part 3): a site's boxes and its cloud come back at once.

    .venv/bin/python bench/drain.py [--boxes 1000] [--backlog 4096] [--workers 4]
                                    [--spread-s 60] [--cloud-back-s 60]

N simulated boxes each hold a full backlog (4,096 signed readings by default, the
firmware's maximum: device/backlog.py SLOTS) and reconnect within --spread-s of each other
to a real gateway (`pharmasync gateway run`, its own process) through a real Mosquitto
started here with hardware/mosquitto-site.conf (only its listener, persistence folder
and $SYS interval changed). The gateway's cloud is away when the storm begins
(`pharmasync cloud serve` on SQLite, its registry filled first, then stopped) and comes
back --cloud-back-s later.

Every box runs the firmware's own sending code (device/firmware.py Box.link_forever:
QoS 1 windows of 8, the retained ack awaited after subscribing, gap-aware version-2 acks
through device/ack.py and device/backlog.py, missing readings resent, the whole backlog
resent after ack_timeout_s without an ack, doubling to max_resend_s, reconnects with
capped backoff), with the firmware's default timeouts, on real backlog files (in
/dev/shm: the boxes' flash). They run in --workers processes at nice 10, as does the
cloud, so that on this 2-core machine the gateway and broker get the CPU first (real boxes
bring their own, and the cloud is a remote service).
The boxes do not check ack signatures (provisioned as with --insecure-acks: checking
costs each box one verification per ack, not the gateway); the gateway signs every ack.

The backlogs are signed once and cached under the temp folder (signing 4.1 M readings
takes minutes: done in parallel, before any clock starts); each run copies them.

One more box is not draining: it has been online all along, takes a reading every 2 s,
and its cold room warms past the high limit early in the storm; its alarm (profile
"live": delay 30 s) must be raised within its delay plus a reading interval, while the
drain is under way (the drain must not starve the present).

Reported: messages the broker dropped ($SYS/broker/publish/messages/dropped: must be 0),
readings resent (publishes beyond the first of each reading, and the gateway's duplicate
count), the time until every reading is spooled and acknowledged (the last box's backlog
empty), the time until every batch is in the cloud's log with a receipt, the gateway's
peak memory (VmHWM), the live alarm's lateness, and the spool rate as a ratio to one
core's raw BIP-340 verification measured in the same run (pinned to one core; the storm
itself runs free on both). Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud import serve_child  # noqa: E402
from device import reading, schnorr, topics  # noqa: E402

EXE = serve_child.EXE
SITE = "drain"
SLOTS = 4096  # device/backlog.py SLOTS: the firmware's maximum backlog
CACHE_MAX_AGE_S = 3 * 86400  # backlog cache reused while its newest reading is this young
BOX_NICE = 10  # the simulated boxes (real boxes bring their own CPUs) ...
CLOUD_NICE = 10  # ... and the cloud (a remote service): the gateway and broker come first
LIVE_INTERVAL_S = 2
LIVE_DELAY_S = 30.0
LIVE_EXCURSION_AFTER_S = 20.0  # into the storm: the excursion begins
SPOOL_TARGET_S = 600.0
RSS_TARGET_MB = 300.0
_BACKLOG_CHECK = 0xBAC106  # device/backlog.py _CHECK
_SEQ_CHECK = 0x5EC5EC5E  # device/seqstore.py _CHECK


def _bench_gateway() -> Any:
    """bench/gateway.py as a module (its name would shadow the gateway package)."""
    spec = importlib.util.spec_from_file_location(
        "bench_gateway", Path(__file__).parent / "gateway.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def box_secret(i: int) -> bytes:
    """Box i's key, the same in every run (so the signed backlogs can be cached)."""
    return hashlib.sha256(b"pharmasync drain bench box %d" % i).digest()


# -- the signed backlogs (cached) ------------------------------------------------------


def _sign_box(job: tuple[int, int, int, str]) -> None:
    i, backlog, newest, folder = job
    secret = box_secret(i)
    wires = [
        reading.sign(
            secret, k, newest - 60 * (backlog - 1 - k), 450 + k % 200, 5000, reading.FLAG_BACKLOG
        )
        for k in range(backlog)
    ]
    tmp = Path(folder) / f"{i}.bin.tmp"
    tmp.write_bytes(b"".join(wires))
    tmp.rename(Path(folder) / f"{i}.bin")


def signed_backlogs(boxes: int, backlog: int) -> Path:
    """Return the folder of `boxes` signed backlogs of `backlog` readings (one a minute,
    the newest now), signing only those not cached yet, on every core."""
    folder = Path(tempfile.gettempdir()) / "pharmasync-drain-cache" / str(backlog)
    stamp = folder / "newest"
    if not stamp.exists() or time.time() - int(stamp.read_text()) > CACHE_MAX_AGE_S:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        stamp.write_text(str(int(time.time())))
    newest = int(stamp.read_text())
    todo = [
        (i, backlog, newest, str(folder))
        for i in range(boxes)
        if not (folder / f"{i}.bin").exists()
    ]
    if todo:
        print(
            f"signing {len(todo) * backlog:,} readings for {len(todo)} boxes "
            f"(cached in {folder}) ...",
            flush=True,
        )
        t0 = time.time()
        with multiprocessing.Pool(os.cpu_count()) as pool:
            for n, _ in enumerate(pool.imap_unordered(_sign_box, todo, chunksize=4), 1):
                if n % 100 == 0:
                    print(f"  {n}/{len(todo)} boxes signed", flush=True)
        print(f"signed in {time.time() - t0:.0f} s", flush=True)
    return folder


def install_box(cache: Path, i: int, backlog: int, folder: Path) -> None:
    """Give box i a firmware state folder holding its whole backlog unacknowledged."""
    folder.mkdir(parents=True)
    shutil.copyfile(cache / f"{i}.bin", folder / "backlog.bin")
    head, tail, dropped = 0, backlog, 0
    (folder / "backlog.meta").write_text(
        f"{head} {tail} {dropped} {head ^ tail ^ dropped ^ _BACKLOG_CHECK}\n"
    )
    (folder / "seq").write_text(f"{backlog} {backlog ^ _SEQ_CHECK}\n")  # next seq


# -- the boxes (worker processes) ------------------------------------------------------


def box_config(port: int, interval: int = 60, ack_timeout_s: int | None = None) -> dict[str, Any]:
    """A box's firmware config; `ack_timeout_s` None: the firmware's default (30 s)."""
    from device import config

    raw = {
        "site": SITE,
        "label": "drain bench",
        "interval_s": interval,
        "mqtt": {"host": "127.0.0.1", "port": port},
        "insecure_acks": True,
    }
    if ack_timeout_s is not None:
        raw["ack_timeout_s"] = ack_timeout_s
    return config.validate(raw)


class _Counting:
    """A box's MQTT client that counts the readings it publishes (resends included)."""

    def __init__(self, client: Any, counter: list[int]) -> None:
        self._client, self._counter = client, counter

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if topic.endswith("/reading"):
            self._counter[0] += 1
        await self._client.publish(topic, payload, qos, retain)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_client", "_counter"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._client, name, value)


async def run_boxes(spec: dict[str, Any]) -> dict[str, Any]:
    """Run boxes first..last-1 until every one's backlog is acknowledged."""
    from device import firmware
    from device.board_sim import Board
    from device.mqtt import box_client

    counter = [0]

    class DrainBoard(Board):
        def mqtt_client(self, *args: Any) -> Any:
            return _Counting(box_client(*args), counter)

    cfg = box_config(spec["port"], ack_timeout_s=spec.get("ack_timeout_s"))
    boxes = [
        firmware.Box(DrainBoard(f"{spec['dir']}/b{i:04d}", quiet=True), cfg, box_secret(i))
        for i in range(spec["first"], spec["last"])
    ]
    n = len(boxes)
    starts = [spec["t0"] + spec["spread"] * ((spec["first"] + k) * 0.618034 % 1) for k in range(n)]

    async def one(box: Any, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        await box.link_forever()

    tasks = [asyncio.create_task(one(b, t)) for b, t in zip(boxes, starts, strict=True)]
    while any(len(b.backlog) for b in boxes):
        await asyncio.sleep(0.2)
    done = time.time()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "done": done,
        "published": counter[0],
        "resends": sum(b.resends for b in boxes),
        "missing_resent": sum(b.missing_resent for b in boxes),
        "rejected_acks": sum(b.rejected_acks for b in boxes),
        "dropped": sum(b.backlog.dropped for b in boxes),
    }


class WarmingRoom:
    """The live box's DHT22: 5 °C, then 12 °C from `at` (a cold room's door left open)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def read(self) -> tuple[float, float]:
        return (12.0 if time.time() >= self.at else 5.0), 50.0


async def run_live(spec: dict[str, Any]) -> dict[str, Any]:
    """The box that is not draining: online throughout, a reading every 2 s."""
    from device import firmware
    from device.board_sim import Board

    room = WarmingRoom(spec["excursion_at"])

    class LiveBoard(Board):
        def dht(self, pin: int) -> WarmingRoom:
            return room

    box = firmware.Box(
        LiveBoard(f"{spec['dir']}/live", quiet=True),
        box_config(spec["port"], LIVE_INTERVAL_S),
        box_secret(10**6),
    )
    task = asyncio.create_task(box.run())
    while time.time() < spec["until"]:
        await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"taken": box.taken, "backlog": len(box.backlog)}


def worker_main(raw: str) -> None:
    spec = json.loads(raw)
    os.nice(spec.get("nice", 0))
    result = asyncio.run(run_live(spec) if spec["kind"] == "live" else run_boxes(spec))
    print(json.dumps(result), flush=True)


# -- broker, cloud, gateway ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_config(port: int, work: Path, inflight: int | None = None) -> str:
    """hardware/mosquitto-site.conf, listening on `port` here, persisting into `work`,
    publishing $SYS every second (and with `inflight`, that max_inflight_messages)."""
    site = (REPO / "hardware" / "mosquitto-site.conf").read_text()
    drop = ("listener ", "max_inflight_messages ") if inflight else ("listener ",)
    lines = [line for line in site.splitlines() if not line.startswith(drop)]
    if inflight:
        lines.append(f"max_inflight_messages {inflight}")
    lines += [
        f"listener {port} 127.0.0.1",
        f"persistence_location {work}/",
        "sys_interval 1",
        f"log_dest file {work}/mosquitto.log",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    return "\n".join(lines) + "\n"


class Watcher:
    """Follows the broker's $SYS counters and the site's retained alarm state."""

    def __init__(self, port: int, live_zone: str) -> None:
        import paho.mqtt.client as paho

        self.sys: dict[str, str] = {}
        self.live_zone = live_zone
        self.alarm_seen: float | None = None
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="drain-watcher")
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("$SYS/broker/#", 0), (topics.alarms(SITE), 1)])
        self.client.loop_start()

    def _message(self, _c: object, _u: object, msg: Any) -> None:
        if msg.topic.startswith("$SYS/"):
            self.sys[msg.topic[len("$SYS/broker/") :]] = msg.payload.decode()
            return
        if self.alarm_seen is None:
            active = json.loads(msg.payload).get("active", [])
            if any(a.get("zone") == self.live_zone and a.get("kind") == "high" for a in active):
                self.alarm_seen = time.time()

    def counter(self, name: str) -> int:
        return int(float(self.sys.get(name, "0")))

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_cloud(data: Path, port: int, owner: bytes, log: Path) -> subprocess.Popen[bytes]:
    """The cloud ledger, at nice CLOUD_NICE once it serves: in a deployment it is a remote
    service with CPUs of its own, and here it would take the CPU the simulated boxes need
    (at nice 0 it used half a core while the storm lasted, and the boxes published at
    ~5,300 readings/s while the gateway kept the broker's queue under ~3,000)."""
    proc, _ = serve_child.start(
        data, port, "--owner", schnorr.pubkey(owner).hex(), log=log.open("ab")
    )
    os.setpriority(os.PRIO_PROCESS, proc.pid, CLOUD_NICE)
    return proc


async def register_in_cloud(port: int, owner: bytes, gateway: bytes, keys: list[bytes]) -> None:
    import aiohttp

    from gateway import registry_change as registry

    now = int(time.time())
    changes: list[registry.Change] = [registry.GatewayRegistration(gateway, now, site=SITE)]
    changes += [registry.BoxRegistration(k, now, site=SITE, label="") for k in keys]
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
        sem = asyncio.Semaphore(8)

        async def post(change: Any) -> None:
            async with (
                sem,
                http.post("/v1/registry", json=registry.sign_request(owner, change)) as r,
            ):
                assert r.status == 201, await r.text()

        await post(changes[0])
        await asyncio.gather(*(post(c) for c in changes[1:]))


def gateway_folder(
    work: Path, keys: list[bytes], live: bytes, cloud_port: int, port: int, live_lane: bool
) -> Path:
    from gateway.registry import Box, Registry

    data = work / "gw"
    data.mkdir()
    reg = Registry(data / "registry.json")
    for i, k in enumerate(keys):
        reg.put(Box(k, f"drain {i}", SITE))
    reg.put(Box(live, "live", SITE, profile="live"))
    reg.close()
    (data / "gateway.key").write_text(os.urandom(32).hex() + "\n")
    os.chmod(data / "gateway.key", 0o600)
    toml = work / "gateway.toml"
    toml.write_text(
        f'[gateway]\nsite = "{SITE}"\ndata_dir = "{data}"\n[mqtt]\nport = {port}\n'
        f"live_lane = {'true' if live_lane else 'false'}\n"
        f'[uplink]\nurl = "http://127.0.0.1:{cloud_port}"\nmax_backoff_s = 5\n[status]\nport = 0\n'
        f"[alarms.live]\ninterval_s = {LIVE_INTERVAL_S}\ndelay_consecutive_s = {LIVE_DELAY_S}\n"
    )
    return data


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def spool_state(path: Path) -> tuple[int, int, int, int]:
    """(rows ever spooled, unsealed, batches, batches without a receipt) of the gateway's
    spool, read cheaply from another connection (max(id): nothing is pruned here)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        (rows,) = db.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()
        (unsealed,) = db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM readings "
            "WHERE id > (SELECT coalesce(max(last_id), 0) FROM batches) LIMIT 100000)"
        ).fetchone()
        batches, unsent = db.execute(
            "SELECT count(*), coalesce(sum(sent_at IS NULL), 0) FROM batches"
        ).fetchone()
    finally:
        db.close()
    return rows, unsealed, batches, unsent


# -- the scenario ----------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench_gw = _bench_gateway()
    cache = signed_backlogs(args.boxes, args.backlog)
    keys = [schnorr.pubkey(box_secret(i)) for i in range(args.boxes)]
    live_key = schnorr.pubkey(box_secret(10**6))
    total = args.boxes * args.backlog

    # One core's raw verification, measured now (the ratio's denominator), pinned.
    sample = []
    for i in range(min(args.boxes, 20)):
        data = (cache / f"{i}.bin").read_bytes()
        sample += [
            data[k : k + reading.SIZE]
            for k in range(0, min(len(data), 1000 * reading.SIZE), reading.SIZE)
        ]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    raw = bench_gw.raw_verify_rate(sample)
    os.sched_setaffinity(0, before)
    print(f"raw BIP-340 verification: {raw:,.0f} /s (one core, pinned)", flush=True)

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="pharmasync-drain-"))
    flash = Path(tempfile.mkdtemp(prefix="pharmasync-drain-boxes-", dir=shm))
    procs: list[subprocess.Popen[Any]] = []
    watcher = None
    try:
        t = time.time()
        for i in range(args.boxes):
            install_box(cache, i, args.backlog, flash / f"b{i:04d}")
        print(f"{args.boxes} boxes' flash ready in {time.time() - t:.1f} s ({flash})", flush=True)

        port, cloud_port = free_port(), free_port()
        (work / "mosquitto.conf").write_text(broker_config(port, work, args.inflight))
        broker = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(work / "mosquitto.conf")]
        )
        procs.append(broker)

        owner = os.urandom(32)
        gw_data = gateway_folder(work, keys, live_key, cloud_port, port, args.live_lane)
        gw_key = schnorr.pubkey(bytes.fromhex((gw_data / "gateway.key").read_text().strip()))
        cloud_log = work / "cloud.log"
        cloud = start_cloud(work / "cloud", cloud_port, owner, cloud_log)
        procs.append(cloud)  # stopped by the finally below if registering fails
        asyncio.run(register_in_cloud(cloud_port, owner, gw_key, [*keys, live_key]))
        cloud.send_signal(signal.SIGTERM)  # the outage: the cloud is away
        cloud.wait(30)
        print("cloud registered the gateway and boxes, then went away", flush=True)

        gw_log = (work / "gateway.log").open("wb")
        gateway = subprocess.Popen(
            [str(EXE), "gateway", "run", "--config", str(work / "gateway.toml")],
            stdout=gw_log,
            stderr=subprocess.STDOUT,
        )
        procs.append(gateway)
        # Until it is subscribed (on a loaded machine starting takes seconds, and a storm
        # begun before it would find no spool to read: the run stopped there).
        started = time.time()
        while b"MQTT connected" not in (work / "gateway.log").read_bytes():
            if gateway.poll() is not None or time.time() - started > 120:
                raise SystemExit(f"gateway did not start: see {work}/gateway.log")
            time.sleep(0.2)
        print(f"gateway subscribed after {time.time() - started:.1f} s", flush=True)
        watcher = Watcher(port, topics.device_id(live_key))

        t0 = time.time() + 8.0  # the storm begins; the live box is online before it
        excursion_at = t0 + LIVE_EXCURSION_AFTER_S
        worker = [sys.executable, str(Path(__file__).resolve()), "--worker"]
        live = subprocess.Popen(
            [
                *worker,
                json.dumps(
                    {
                        "kind": "live",
                        "dir": str(flash),
                        "port": port,
                        "excursion_at": excursion_at,
                        "until": t0 + 3 * 3600,
                    }
                ),
            ],
            stdout=subprocess.PIPE,
        )
        procs.append(live)
        per = -(-args.boxes // args.workers)
        workers = []
        for w in range(args.workers):
            first, last = w * per, min(args.boxes, (w + 1) * per)
            if first >= last:
                break
            spec = {
                "kind": "boxes",
                "dir": str(flash),
                "port": port,
                "first": first,
                "last": last,
                "t0": t0,
                "spread": args.spread_s,
                "ack_timeout_s": args.ack_timeout_s,
                "nice": BOX_NICE,
            }
            workers.append(subprocess.Popen([*worker, json.dumps(spec)], stdout=subprocess.PIPE))
        procs += workers
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(gateway.pid),
                    "-o",
                    args.py_spy,
                    "-f",
                    "raw",
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--threads",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        gw_cpu0, broker_cpu0 = bench_gw.cpu_seconds(gateway.pid), bench_gw.cpu_seconds(broker.pid)
        broker_rss = 0
        load = os.getloadavg()
        print(
            f"storm: {args.boxes} boxes x {args.backlog} readings = {total:,}, connecting over "
            f"{args.spread_s:.0f} s; cloud back after {args.cloud_back_s:.0f} s; "
            f"load {load[0]:.1f}",
            flush=True,
        )

        peak_rss = 0
        queued_peak = 0
        cloud_back = None
        results: list[dict[str, Any]] = []
        spooled_at = acked_at = receipts_at = None
        deadline = t0 + args.timeout_s
        last_print = 0.0
        while time.time() < deadline:
            time.sleep(0.5)
            now = time.time()
            peak_rss = max(peak_rss, vm_kb(gateway.pid, "VmRSS"))
            broker_rss = max(broker_rss, vm_kb(broker.pid, "VmRSS"))
            queued_peak = max(queued_peak, watcher.counter("store/messages/count"))
            if cloud_back is None and now >= t0 + args.cloud_back_s:
                cloud = start_cloud(work / "cloud", cloud_port, owner, cloud_log)
                procs.append(cloud)
                cloud_back = time.time()
                print(f"  {now - t0:6.1f} s: cloud back", flush=True)
            for p in workers:
                if p.poll() is not None and p.stdout is not None and not getattr(p, "_read", False):
                    results.append(json.loads(p.stdout.read().decode().strip().splitlines()[-1]))
                    p._read = True  # type: ignore[attr-defined]
            rows, unsealed, batches, unsent = spool_state(gw_data / "spool.sqlite")
            if spooled_at is None and rows >= total:
                spooled_at = now  # every drained reading (and the live ones) is in the spool
            if acked_at is None and len(results) == len(workers):
                acked_at = max(r["done"] for r in results)
                print(f"  {acked_at - t0:6.1f} s: every box's backlog acknowledged", flush=True)
            if (
                receipts_at is None
                and acked_at is not None
                and cloud_back is not None
                and unsealed == 0
                and unsent == 0
            ):
                receipts_at = now
                print(f"  {now - t0:6.1f} s: every batch in the cloud with a receipt", flush=True)
            alarm_settled = watcher.alarm_seen is not None or now > excursion_at + LIVE_DELAY_S + 60
            if receipts_at is not None and alarm_settled:
                break
            if now - last_print >= 10:
                last_print = now
                print(
                    f"  {now - t0:6.1f} s: spooled {rows:,}, unsealed {unsealed:,}, batches "
                    f"{batches:,} ({unsent:,} without receipt), broker holds "
                    f"{watcher.counter('store/messages/count'):,}, gateway RSS "
                    f"{vm_kb(gateway.pid, 'VmRSS') / 1024:.0f} MB, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        gw_cpu = bench_gw.cpu_seconds(gateway.pid) - gw_cpu0
        broker_cpu = bench_gw.cpu_seconds(broker.pid) - broker_cpu0
        time.sleep(2.5)  # one more $SYS round
        # Mosquitto 2.0.11 publishes no $SYS drop counter (later versions do); it logs a
        # notice for every client whose outgoing messages it starts dropping.
        dropped = watcher.counter("publish/messages/dropped")
        log_drops = (work / "mosquitto.log").read_text(errors="replace").count("being dropped")
        hwm = vm_kb(gateway.pid, "VmHWM")
        alarm_seen = watcher.alarm_seen
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(60)
            stopped_cleanly = True
        except subprocess.TimeoutExpired:  # say where it hangs, then stop it
            stopped_cleanly = False
            dump = subprocess.run(
                [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(gateway.pid)],
                capture_output=True,
                text=True,
            )
            (work / "gateway-hang.txt").write_text(dump.stdout + dump.stderr)
            print(f"gateway did not stop within 60 s of SIGTERM: {work}/gateway-hang.txt")
            gateway.kill()
            gateway.wait(30)
        gw_log.close()
        gw_text = (work / "gateway.log").read_text(errors="replace")
        db = sqlite3.connect(gw_data / "spool.sqlite")
        stored = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        in_batches, sent = db.execute(
            "SELECT coalesce(sum(count), 0), coalesce(sum(count * (sent_at IS NOT NULL)), 0) "
            "FROM batches"
        ).fetchone()
        db.close()
    finally:
        if watcher is not None:
            watcher.stop()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(flash, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    published = sum(r["published"] for r in results)
    spool_s = (acked_at - t0) if acked_at else None
    rate = total / spool_s if spool_s else 0.0
    excursion_due = excursion_at + LIVE_DELAY_S
    late = None if alarm_seen is None else alarm_seen - excursion_due
    out = {
        "boxes": args.boxes,
        "backlog": args.backlog,
        "readings": total,
        "spread_s": args.spread_s,
        "max_inflight_override": args.inflight,
        "live_lane": args.live_lane,
        "cloud_back_s": args.cloud_back_s,
        "box_ack_timeout_s": args.ack_timeout_s,
        "load_average_1min_at_start": round(load[0], 2),
        "pinned": "raw verification pinned to one core; the storm free on both cores",
        "raw_verify_per_s": round(raw),
        "broker_dropped": dropped,
        "broker_drop_notices_in_log": log_drops,
        "broker_peak_messages_held": queued_peak,
        "readings_published": published,
        "readings_resent": published - total,
        "whole_backlog_resends": sum(r["resends"] for r in results),
        "missing_resent": sum(r["missing_resent"] for r in results),
        "rejected_acks": sum(r["rejected_acks"] for r in results),
        "spooled_and_acked_s": None if spool_s is None else round(spool_s, 1),
        "spooled_seen_s": None if spooled_at is None else round(spooled_at - t0, 1),
        "spool_rate_per_s": round(rate),
        "spool_ratio_to_raw_verify": round(rate / raw, 3),
        "in_cloud_with_receipts_s": None if receipts_at is None else round(receipts_at - t0, 1),
        "cloud_back_at_s": None if cloud_back is None else round(cloud_back - t0, 1),
        "gateway_peak_rss_mb": round(max(hwm, peak_rss) / 1024, 1),
        "gateway_cpu_us_per_reading": round(1e6 * gw_cpu / total, 1),
        "broker_cpu_us_per_reading": round(1e6 * broker_cpu / total, 1),
        "broker_peak_rss_mb": round(broker_rss / 1024, 1),
        "spool_rows": stored,
        "readings_in_batches": in_batches,
        "readings_with_receipts": sent,
        "live_alarm_due_s": round(excursion_due - t0, 1),
        "live_alarm_late_s": None if late is None else round(late, 1),
        "gateway_log_warnings": gw_text.count("WARNING"),
        "gateway_silent_alarms": gw_text.count("alarm silent raised"),
        "gateway_stopped_cleanly": stopped_cleanly,
    }
    return out


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--boxes", type=int, default=1000)
    p.add_argument("--backlog", type=int, default=SLOTS, help=f"readings per box (<= {SLOTS})")
    p.add_argument("--workers", type=int, default=4, help="processes running the boxes")
    p.add_argument("--spread-s", type=float, default=60.0, help="boxes reconnect within this")
    p.add_argument("--cloud-back-s", type=float, default=60.0, help="the cloud's outage")
    p.add_argument("--timeout-s", type=float, default=3600.0)
    p.add_argument(
        "--ack-timeout-s",
        type=int,
        help="the draining boxes' ack_timeout_s (default: the firmware's, 30 s); shorter makes "
        "a small storm resend whole backlogs as a full-scale one does",
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, spool)")
    p.add_argument("--live-lane", action="store_true", help="[mqtt] live_lane = true")
    p.add_argument("--inflight", type=int, help="override the site's max_inflight_messages")
    p.add_argument("--py-spy", metavar="FILE", help="profile the gateway (raw stacks) into FILE")
    p.add_argument("--sign-only", action="store_true", help="fill the backlog cache and stop")
    args = p.parse_args()
    if not 1 <= args.backlog <= SLOTS:
        p.error(f"--backlog: got {args.backlog}, want 1..{SLOTS}")
    if args.sign_only:
        signed_backlogs(args.boxes, args.backlog)
        return
    out = run(args)
    print(
        f"broker dropped            : {out['broker_dropped']} messages ($SYS), "
        f"{out['broker_drop_notices_in_log']} drop notices in its log (must be 0)"
    )
    print(
        f"readings resent           : {out['readings_resent']:,} "
        f"({out['whole_backlog_resends']} whole-backlog resends, {out['missing_resent']} missing)"
    )
    print(
        f"spooled and acknowledged  : {out['spooled_and_acked_s']} s "
        f"= {out['spool_rate_per_s']:,} /s "
        f"= {out['spool_ratio_to_raw_verify']} x raw "
        f"(target < {SPOOL_TARGET_S:.0f} s at full scale)"
    )
    print(
        f"in the cloud with receipts: {out['in_cloud_with_receipts_s']} s "
        f"(cloud back at {out['cloud_back_at_s']} s)"
    )
    print(
        f"gateway peak memory       : {out['gateway_peak_rss_mb']} MB "
        f"(target < {RSS_TARGET_MB:.0f})"
    )
    print(
        f"live alarm                : due at {out['live_alarm_due_s']} s, "
        f"late by {out['live_alarm_late_s']} s "
        f"(within a reading interval of {LIVE_INTERVAL_S} s + commit is on time)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
