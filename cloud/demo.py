"""`pharmasync demo`: the whole system in one process, on embedded defaults.

It starts, in one asyncio loop:
    the cloud ledger   SQLite in DATA_DIR/cloud, HTTP on --port
    an MQTT broker     amqtt, in-process, on a free local port
    a gateway          DATA_DIR/gateway: verifies, alarms, spools, seals, uploads
    sensor boxes       simulated, DATA_DIR/boxes: a healthy room, door openings, a failing
                       compressor, a flaky sensor; a minute of cold room per reading
    lots               four lots moving manufacturer → distributor → retailer → pharmacy,
                       a box on each one's first shipment (cloud/demo_lots.py): one is
                       quarantined by its box's readings, one recalled; keys in DATA_DIR/keys

and keeps going until Ctrl-C. Everything it creates stays in DATA_DIR (keys, spool,
ledger), so a second run continues the same log with the same boxes (and new lots).
Registration goes through the real path: an owner key signs registry changes sent to the
cloud's API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import shutil
import signal
import socket
import sys
import time
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
from aiohttp import web

from cloud import lots_cli, startup
from cloud.api.app import make_app
from cloud.demo_lots import DemoLots, Keys
from cloud.settings import DEFAULT_PORT, CloudSettings
from device import cert, datalock, schnorr, topics
from device.cliutil import examples, positive_int
from device.simulate import SimSettings, make_box, summary
from gateway import app as gateway_app
from gateway import registry_change as registry
from gateway.alarms import AlarmProfile
from gateway.registry import Box, Registry
from gateway.settings import (
    BatchSettings,
    MqttSettings,
    Settings,
    StatusSettings,
    UplinkSettings,
)

log = logging.getLogger("pharmasync.demo")
SITE = "demo-warehouse"
PROFILES = ("coldroom", "door", "failing", "dropout")
ZONES = {
    "coldroom": "cold room A",
    "door": "cold room B",
    "failing": "cold room C",
    "dropout": "cold room D",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command to the top-level parser."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole system in one process: cloud, broker, gateway, boxes",
        description="Start the cloud ledger (SQLite), an in-process MQTT broker, a gateway "
        "and simulated sensor boxes (one in a cold room whose compressor fails), print what "
        "runs where, and keep going until Ctrl-C. A second run continues from the same data.",
        epilog=examples(
            "pharmasync demo",
            f"pharmasync demo --data-dir ps-demo --port {DEFAULT_PORT} --interval 0.5 "
            "--duration 10",
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=startup.data_dir,
        default=Path("pharmasync-demo"),
        help="where everything is kept (default: ./pharmasync-demo)",
    )
    parser.add_argument(
        "--port",
        type=startup.port,
        default=DEFAULT_PORT,
        help="the cloud's HTTP port (default %(default)s)",
    )
    parser.add_argument(
        "--boxes", type=positive_int, default=4, help="simulated boxes (default %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between a box's readings (default %(default)s; each is a simulated minute)",
    )
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every component's messages")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C (or --duration); return the exit status."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # the broker's own chatter (e.g. undelivered messages at shutdown)
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        # The demo prints each alarm itself; it escalates to no one, so "escalating" is noise.
        logging.getLogger("pharmasync.gateway.escalation").setLevel(logging.ERROR)
        logging.getLogger("pharmasync.gateway").addFilter(_alarm_lines_shown_by_the_demo)
    if args.interval <= 0:
        print("error: --interval: want seconds > 0", file=sys.stderr)
        return 2
    asyncio.run(Demo(args).run())  # a failure to start is explained by cloud.cli.main
    return 0


def _alarm_lines_shown_by_the_demo(record: logging.LogRecord) -> bool:
    """Drop the gateway's log line of an alarm raised or cleared: the demo prints each alarm
    itself, once ("!! ALARM raised: ..."), from the gateway's alarm topic."""
    text = record.getMessage()
    return not (text.startswith("alarm ") and " for box " in text)


def pharmasync_command() -> str:
    """The absolute path of this `pharmasync` command, to print commands that work from any
    folder (the console script beside this interpreter, else the one on PATH)."""
    beside = Path(sys.executable).parent / "pharmasync"
    if beside.exists():
        return str(beside)
    return shutil.which("pharmasync") or f"{sys.executable} -m cloud.cli"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """One run of the demo: its components, started and stopped in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir: Path = args.data_dir.resolve()
        self.stop = asyncio.Event()
        self.cloud_url = f"http://127.0.0.1:{args.port}"

    async def run(self) -> None:
        """Run until stopped; raises datalock.FolderBusy if another demo uses the folder,
        StartupError if its cloud cannot listen."""
        startup.check_can_listen("127.0.0.1", self.args.port, "the cloud cannot listen")
        with datalock.acquire(self.dir):  # one demo per data folder
            await self._run()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        owner = gateway_app.load_or_create_key(self.dir / "owner.key")
        keys = Keys(self.dir / "keys")
        async with AsyncExitStack() as stack:
            await self._start_cloud(stack, owner, keys.xonly("regulator"))
            mqtt_port = await self._start_broker(stack)
            gw_secret = gateway_app.load_or_create_key(self._gateway_dir() / "gateway.key")
            gw_key = schnorr.pubkey(gw_secret)
            # The owner certifies the gateway's key, so the boxes (which trust the owner's
            # key) accept its acknowledgements: `pharmasync gateway certify` does the same.
            now = int(time.time())
            self._cert_path().write_text(
                cert.encode(owner, gw_key, SITE, now - 300, now + 365 * 86400).hex() + "\n"
            )
            sim = SimSettings(
                broker_port=mqtt_port,
                site=SITE,
                boxes=self.args.boxes,
                interval_s=self.args.interval,
                profiles=PROFILES,
                data_dir=self.dir / "boxes",
                owner_key=schnorr.pubkey(owner).hex(),
                failure_after_min=0,  # the compressor has just failed as the demo starts
                sensor_step_s=60,
            )
            boxes = [make_box(sim, i) for i in range(sim.boxes)]
            await self._register(owner, gw_key, boxes)
            lots = DemoLots(self.cloud_url, self.dir, keys, boxes)
            await lots.setup(owner)  # before the boxes start: their first readings count
            status_port = free_port()
            gw_task = asyncio.create_task(
                gateway_app.serve(self._gateway_settings(mqtt_port, status_port), self.stop),
                name="gateway",
            )
            await asyncio.sleep(0.5)  # the gateway's session first: the broker queues for it
            self._banner(mqtt_port, status_port, boxes, lots)
            box_tasks = [asyncio.create_task(b.run(None), name=f"box {b.id}") for b in boxes]
            watch = asyncio.create_task(self._watch_alarms(mqtt_port), name="alarms")
            report = asyncio.create_task(self._report(boxes), name="report")
            story = asyncio.create_task(lots.story(), name="lots")
            statuses = asyncio.create_task(lots.watch(), name="lot statuses")
            if self.args.duration:
                loop.call_later(self.args.duration, self.stop.set)
            await self.stop.wait()
            print("\nstopping: boxes keep unacknowledged readings, the gateway its spool ...")
            others = [watch, report, story, statuses]
            for task in [*box_tasks, *others]:
                task.cancel()
            for task in [*box_tasks, *others]:
                with suppress(asyncio.CancelledError):
                    await task
            await gw_task
            waiting = sum(len(b.backlog) for b in boxes)
            print(
                f"stopped: {sum(b.taken for b in boxes):,} readings taken this run; {waiting:,} "
                "not yet acknowledged stay in their boxes' backlogs and are sent next run.\n"
                f"Run the same command again to continue from {self.dir}"
            )

    # -- components ----------------------------------------------------------------------

    def _gateway_dir(self) -> Path:
        path = self.dir / "gateway"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _start_cloud(self, stack: AsyncExitStack, owner: bytes, regulator: bytes) -> None:
        config = CloudSettings(
            data_dir=self.dir / "cloud", owners=(schnorr.pubkey(owner),), regulators=(regulator,)
        )
        runner = web.AppRunner(make_app(config), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await startup.listen(runner, "127.0.0.1", self.args.port, "the cloud cannot listen")

    async def _start_broker(self, stack: AsyncExitStack) -> int:
        from amqtt.broker import Broker

        port = free_port()
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        # amqtt 0.12.1 iterates its topic table across awaits (a new session's retained
        # messages, each broadcast), so a client subscribing meanwhile raised "dictionary
        # changed size during iteration" and dropped the connecting client: iterate copies.
        broker._subscriptions = _Snapshots(broker._subscriptions)
        await broker.start()
        stack.push_async_callback(broker.shutdown)
        return port

    def _cert_path(self) -> Path:
        return self._gateway_dir() / "gateway.cert"

    def _gateway_settings(self, mqtt_port: int, status_port: int) -> Settings:
        interval = self.args.interval
        profile = AlarmProfile(
            delay_consecutive_s=max(10 * interval, 10),
            delay_cumulative_s=max(30 * interval, 30),
            interval_s=interval,
            silent_after_intervals=5,
            mkt_window_s=3600,
        )
        return Settings(
            site=SITE,
            data_dir=self._gateway_dir(),
            certificate=self._cert_path(),
            mqtt=MqttSettings(port=mqtt_port, client_id="pharmasync-demo-gateway"),
            batch=BatchSettings(max_age_s=5.0),
            uplink=UplinkSettings(url=self.cloud_url, max_backoff_s=10),
            status=StatusSettings(port=status_port),
            alarms={"default": profile},
        )

    async def _register(self, owner: bytes, gw_key: bytes, boxes: list[Any]) -> None:
        """Register the gateway and boxes with the cloud (signed by the owner) and the
        boxes with the gateway, skipping what a previous run registered."""
        async with aiohttp.ClientSession(base_url=self.cloud_url) as http:
            async with http.get("/v1/gateways") as r:
                gateways = {g["key"] for g in await r.json()}
            async with http.get("/v1/devices") as r:
                devices = {d["key"] for d in await r.json()}
            now = int(time.time())
            changes: list[registry.Change] = []
            if gw_key.hex() not in gateways:
                changes.append(registry.GatewayRegistration(gw_key, now, site=SITE))
            for box in boxes:
                if box.key.hex() not in devices:
                    changes.append(
                        registry.BoxRegistration(box.key, now, site=SITE, label=box.cfg["label"])
                    )
                    changes.append(
                        registry.Attachment(
                            box.key, now, subject=self._zone(box), start=now, end=None
                        )
                    )
            for change in changes:
                async with http.post(
                    "/v1/registry", json=registry.sign_request(owner, change)
                ) as r:
                    if r.status != 201:
                        raise OSError(f"registering {change.OP}: HTTP {r.status} {await r.text()}")
        reg = Registry(self._gateway_dir() / "registry.json")
        try:
            for box in boxes:
                if reg.get(box.key) is None:
                    reg.put(
                        Box(key=box.key, label=box.cfg["label"], site=SITE, zone=self._zone(box))
                    )
        finally:
            reg.close()

    def _zone(self, box: Any) -> str:
        profile = box.board.driver.profile
        return ZONES.get(profile, "cold room")

    # -- what the user sees --------------------------------------------------------------

    def _banner(self, mqtt_port: int, status_port: int, boxes: list[Any], lots: DemoLots) -> None:
        print(
            f"""PharmaSync demo — everything in one process, data in {self.dir}

  cloud ledger     {self.cloud_url}/   (start here: what this ledger is, with links)
                   {self.cloud_url}/v1/checkpoint   (the signed checkpoint)
                   {self.cloud_url}/v1/devices      (registered boxes)
                   {self.cloud_url}/v1/openapi.json
  MQTT broker      127.0.0.1:{mqtt_port} (amqtt, in-process)
  gateway          status page http://127.0.0.1:{status_port}/  (alarms, boxes, spool)
  sensor boxes     {len(boxes)} simulated, one reading every {self.args.interval:g} s:"""
        )
        for box in boxes:
            print(f"                   {box.id}  {box.cfg['label']:<22} in {self._zone(box)}")
        print(
            f"  lots             {len(lots.lots)} of GTIN {lots_cli.GTIN}, signed by the "
            f"participants' keys in {lots.keys.folder}:"
        )
        for line in lots.lines():
            print(f"                   {line}")
        print("  (status changes print as ** lines; the story's steps as indented lines)")
        print("\nFollow the lots, from any folder (once they have moved, in ~20 s):")
        for command in lots.try_commands(shlex.quote(pharmasync_command())):
            print(f"  {command}")
        counter = lots.counter_lines(shlex.quote(pharmasync_command()), self.dir)
        if counter:
            print("\nAt the pharmacy counter: open a Digital Link on a phone, or check a pack's")
            print("proof offline from the log's key alone:")
            for line in counter:
                print(f"  {line}")
        print("\nTry, in another terminal (after a few seconds), from any folder:")
        for command in self.try_commands(boxes[0]):
            print(f"  {command}")
        print("Ctrl-C stops; running the same command again continues.\n", flush=True)

    def try_commands(self, box: Any) -> list[str]:
        """The commands the banner suggests: save the log's key, fetch a reading's proof and
        check it pinned to that key, then check the whole log. Absolute paths, so they work
        from any folder; every file they write is in the data folder."""
        q = shlex.quote
        exe = q(pharmasync_command())
        vkey, bundle = q(str(self.dir / "ledger.vkey")), q(str(self.dir / "bundle.json"))
        state = q(str(self.dir / "verify-state.json"))
        url = self.cloud_url
        return [
            f"curl -s {url}/v1/log/vkey -o {vkey}",
            f"curl -s {url}/v1/readings/{box.key.hex()}/1/proof -o {bundle}",
            f"{exe} verify {bundle} --log-vkey @{vkey} --device {box.id}",
            f"{exe} verify --cloud {url} --log-vkey @{vkey} --state {state} --once",
        ]

    async def _report(self, boxes: list[Any]) -> None:
        started = time.monotonic()
        async with aiohttp.ClientSession(base_url=self.cloud_url) as http:
            while True:
                await asyncio.sleep(10)
                ledger = "ledger unreachable"
                with suppress(aiohttp.ClientError, ValueError, KeyError):
                    async with http.get("/healthz") as r:
                        size = (await r.json())["log_size"]
                    async with http.get("/v1/devices") as r:
                        stored = sum(d["last_seq"] + 1 for d in await r.json())
                    ledger = f"ledger: {size} log entries, {stored:,} readings"
                print(f"{summary(boxes, time.monotonic() - started)}  | {ledger}")

    async def _watch_alarms(self, mqtt_port: int) -> None:
        """Print alarms as the gateway raises and clears them (its retained alarm topic)."""
        shown: set[str] = set()
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="demo-alarms") as c:
                    await c.subscribe(topics.alarms(SITE), qos=1)
                    async for message in c.messages:
                        shown = self._show_alarms(message.payload, shown)
            except aiomqtt.MqttError:
                await asyncio.sleep(1)

    def _show_alarms(self, payload: Any, shown: set[str]) -> set[str]:
        try:
            active = json.loads(bytes(payload))["active"]
            now = {f"{a['kind']} in {a['zone']}": a for a in active}
        except (ValueError, KeyError, TypeError):
            return shown
        for name in sorted(now.keys() - shown):
            print(f"!! ALARM raised: {name}: {now[name]['detail']}")
        for name in sorted(shown - now.keys()):
            print(f"   alarm cleared: {name}")
        return set(now)


class _Snapshots(dict):  # type: ignore[type-arg]
    """A dict whose iteration walks a copy taken when it starts (see _start_broker)."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(super().__iter__()))

    def items(self):  # type: ignore[no-untyped-def]
        return list(super().items())
