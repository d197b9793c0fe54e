"""Assembling and running a gateway from its settings: `pharmasync gateway run`.

The data folder holds everything the gateway owns:
    gateway.key      its BIP-340 secret (created on first start, mode 0600)
    registry.json    the box registry (TinyDB): followed from the cloud with [registry]
                     follow = true; `pharmasync gateway boxes ...` edits it for bootstrap
    registry_follow.json  what the registry follower verified (gateway/registry_follow.py)
    lots_follow.json  the cloud's last answer: which lots the boxes are on, with their
                     storage profiles (gateway/lots_follow.py)
    spool.sqlite     readings and batches (WAL)
    quarantine.sqlite  rejected messages kept as evidence, in a budget of their own
    notify.sqlite    alarms, who was told when, acknowledgements (gateway/escalation.py)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import suppress
from pathlib import Path

from aiohttp import web

from device import datalock, schnorr, topics
from device.keyfile import create_secret_text
from gateway import event, memtrace
from gateway.ack_relay import AckRelay
from gateway.ble import BleakTransport, BleIngest
from gateway.escalation import AlarmStore, Escalation
from gateway.ingest_mqtt import MqttIngest
from gateway.live_lane import LiveLane
from gateway.lots_follow import LotsFollower
from gateway.registry import Registry
from gateway.registry_follow import RegistryFollower
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.spool import Spool
from gateway.status import Runtime, make_app
from gateway.uplink import Uplink

log = logging.getLogger("pharmasync.gateway")


def load_or_create_key(path: Path) -> bytes:
    """Return the BIP-340 secret (hex) in `path`, creating it (mode 0600) on first use:
    the gateway's key, and the demo's owner key."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        secret = os.urandom(32)
        create_secret_text(path, secret.hex())
        log.info("created key %s in %s", schnorr.pubkey(secret).hex(), path)
        return secret


def open_registry(settings: Settings) -> Registry:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Registry(settings.data_dir / "registry.json")


def start_escalation(gateway: Gateway) -> Escalation:
    """Hook alarm notification onto the gateway: alarms raised from now on, and those the
    engine restored, are escalated; acknowledgements go to the spool for the cloud."""

    async def queue_event(draft: event.Draft) -> None:
        await gateway.spool_call(gateway.spool.add_events, gateway.secret, [draft])

    store = AlarmStore(gateway.settings.data_dir / "notify.sqlite")
    escalation = Escalation(gateway.settings, gateway.key, gateway.registry, store, queue_event)
    escalation.adopt(gateway.alarms.active())
    escalation.profile_of = gateway.alarms.profile  # the limits a lot's profile set, too
    gateway.alarm_listeners.append(escalation.on_events)
    return escalation


def start_ble(gateway: Gateway) -> BleIngest | None:
    """Start a BLE link to every registered box that has a BLE address (bleak over BlueZ)."""
    addresses = {b.ble_address: b.key.hex() for b in gateway.registry.all() if b.ble_address}
    if not addresses:
        return None

    async def on_reading(wire: bytes, address: str) -> bytes | None:
        done = await gateway.receive(wire, "ble:" + address)
        return await done  # the ack payload once committed; None if rejected

    def last_committed(key_hex: str) -> int:
        return gateway.committed.get(bytes.fromhex(key_hex), -1)

    def on_status(key_hex: str, status: bytes) -> None:
        gateway.box_status(topics.device_id(bytes.fromhex(key_hex)), status)

    ble = BleIngest(
        addresses,
        BleakTransport,
        on_reading,
        last_committed,
        certificate=gateway.certificate,
        on_status=on_status,
    )
    ble.start()
    log.info("BLE: collecting from %d boxes", len(addresses))
    return ble


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    """Serve the status page on host:port; raise OSError whose text says which port is
    taken and where to change it (the command line prints it as one line)."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise OSError(
            f"status page: cannot listen on {host}:{port}: {reason} (see [status] port)"
        ) from e


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the gateway until `stop` is set (or SIGINT/SIGTERM), then shut down cleanly.
    Raises datalock.FolderBusy if another process runs on the same data folder."""
    lock = datalock.acquire(settings.data_dir)  # one gateway per folder (creates it)
    secret = load_or_create_key(settings.data_dir / "gateway.key")
    registry = open_registry(settings)
    spool = Spool(
        settings.data_dir / "spool.sqlite",
        settings.spool.quarantine_max_bytes,
        settings.spool.quarantine_max_rows,
    )
    gateway = Gateway(settings, registry, spool, secret)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    escalation = start_escalation(gateway)
    await gateway.start()
    rt = Runtime(gateway, MqttIngest(gateway), Uplink(gateway) if settings.uplink.url else None)
    rt.escalation = escalation
    assert rt.mqtt is not None
    tasks: list[asyncio.Task[None]] = []
    ble = None
    status_runner = None
    try:  # from here on, a failure to start (a busy status port) still shuts down cleanly
        if settings.status.port:  # first: a busy port stops us before any box is acked
            status_runner = web.AppRunner(make_app(rt), access_log=None)
            await status_runner.setup()
            await _listen(status_runner, settings.status.host, settings.status.port)
            log.info(
                "status page on http://%s:%d/ (JSON: /status.json, Prometheus: /metrics)",
                settings.status.host,
                settings.status.port,
            )
        log.info(
            "gateway %s for site %s: %d boxes registered, data in %s",
            gateway.key.hex()[:16],
            settings.site,
            len(registry.all()),
            settings.data_dir,
        )
        if settings.uplink.url and settings.lots.follow:  # the lots the boxes are on:
            rt.lots_follow = LotsFollower(gateway)  # the last answer applies before any reading
        tasks.append(asyncio.create_task(rt.mqtt.run(), name="mqtt"))
        if settings.mqtt.live_lane:
            tasks.append(asyncio.create_task(LiveLane(gateway).run(), name="live lane"))
        tasks.append(asyncio.create_task(escalation.run(), name="escalation"))
        if settings.registry.follow:  # and with it, alarm acks relayed by the cloud
            rt.registry_follow = RegistryFollower(settings, registry)
            rt.ack_relay = AckRelay(settings, gateway.key, escalation, rt.registry_follow)
            tasks.append(asyncio.create_task(rt.ack_relay.run(), name="registry"))
        if rt.uplink is not None:
            tasks.append(asyncio.create_task(rt.uplink.run(), name="uplink"))
        if rt.lots_follow is not None:
            tasks.append(asyncio.create_task(rt.lots_follow.run(), name="lots"))
        else:
            log.info("no [uplink] url set: batches stay in the spool until one is")
        ble = rt.ble = start_ble(gateway)
        if (trace := memtrace.start(rt)) is not None:  # a debugging aid (gateway/memtrace.py)
            tasks.append(trace)
        await stop.wait()
    finally:
        if tasks:  # it ran: say what stopping keeps
            log.info("stopping: committing what is queued (it is sealed by age on the next start)")
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        if ble is not None:
            await ble.stop()
        if status_runner is not None:
            await status_runner.cleanup()
        await gateway.stop()
        escalation.store.close()
        spool.close()
        registry.close()
        lock.release()
