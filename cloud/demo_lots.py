"""The demo's lots: four lots of one product move manufacturer → distributor → retailer →
pharmacy on the demo's ledger, each with one of the simulated boxes on its first shipment.

    the cold room's box   on lot …-COLDROOM, which goes all the way to a pharmacy
    the door's box        on lot …-DOOR, which reaches a retailer and is then recalled
    the failing box       on lot …-FAILING, in transit: its readings quarantine it by itself
    the flaky box         on lot …-DROPOUT, which the distributor holds for damage and the
                          manufacturer's QA releases

Every step is a transaction signed by its participant's key (DATA_DIR/keys, made on first
use) and sent to POST /v1/tx with cloud/lots_cli.py's helpers, as `pharmasync lots` sends
them. The regulator admits the participants (the manufacturer with the demo's owner key, so
it controls the boxes and may attach them: docs/contracts.md §4) and gives the auditor a
replay grant. Each run takes new lot numbers (DEMO1-…, DEMO2-…; DATA_DIR/lots-run counts
the runs); participants a previous run admitted are not admitted again (DATA_DIR/keys/
admitted lists them). Status changes are printed as the public lot records (GET /v1/lots/
{gtin}/{lot}) show them, each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from cloud import cli_client, lots_cli, startup
from cloud.audit.replay import sign_in
from cloud.commands import post_json
from cloud.contracts import didkey, digital_link, public_proof
from device import schnorr
from gateway import app as gateway_app
from gateway import config_entry

GTIN = lots_cli.GTIN
PARTIES = ("manufacturer", "distributor", "retailer", "pharmacy")  # admitted with these roles
KEYS = ("regulator", *PARTIES, "auditor")
STEP_S = 3.0  # wall seconds between the story's steps
WATCH_S = 1.0  # how often the public lot records are read
QUANTITY = 100
# The failing box's lot holds a product kept at 2-6 °C that tolerates 5 s above it: the
# simulated compressor failure (a minute of cold room per reading) takes the box above 6 °C
# about ten readings in, so the ledger quarantines the lot within the demo's first ~30 s at
# the default --interval 2 (20 s of readings, 5 s of delay, the gateway's 5 s batches).
# The other lots are 2-8 °C with the usual delays (15 min, 1 h).
TIGHT = {
    "low_cc": 200,
    "high_cc": 600,
    "delay_consecutive_s": 5,
    "delay_cumulative_s": 60,
    "hysteresis_cc": 50,
    "max_gap_s": 3600,
    "needs_licence": 0,
}
_ADMISSIONS = {
    "manufacturer": ("Demo Pharma", "MIA-DEMO-1"),
    "distributor": ("Demo Wholesale", "WDA-DEMO-2"),
    "retailer": ("Demo Retail", "WDA-DEMO-3"),
    "pharmacy": ("Demo Pharmacy", "PH-DEMO-4"),
}


class StepRefused(startup.StartupError):
    """A transaction of the demo's the ledger refused (before the boxes start, the demo
    cannot start: cloud.cli.main prints why)."""


@dataclass(frozen=True)
class Lot:
    """One of the demo's lots: its number, the box on its first shipment, its story."""

    lot: str
    box_key: bytes
    story: str

    def shipment(self, leg: str) -> str:
        """The id of its shipment on `leg` (MD, DR, RP): the box rides on the MD one."""
        return f"{self.lot}-{leg}"


Step = tuple[Lot, str, Callable[[], Awaitable[None]]]  # a lot, what the step does, the step


class Keys:
    """The participants' secret keys, DATA_DIR/keys/NAME.key (made on first use, mode 0600,
    with NAME.pub beside: x-only hex, as `pharmasync cloud keygen` writes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.secrets = {name: gateway_app.load_or_create_key(self.path(name)) for name in KEYS}
        for name, secret in self.secrets.items():
            public = self.path(name).with_suffix(".pub")
            if not public.exists():
                public.write_text(schnorr.pubkey(secret).hex() + "\n")

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def did(self, name: str) -> str:
        return didkey.from_secret(self.secrets[name])

    def xonly(self, name: str) -> bytes:
        return schnorr.pubkey(self.secrets[name])


class DemoLots:
    """The demo's lots on the ledger at `cloud`: set up before the boxes start (so their
    first readings count), then moved step by step, their status changes printed."""

    def __init__(self, cloud: str, data_dir: Path, keys: Keys, boxes: list[Any]) -> None:
        self.cloud, self.keys = cloud, keys
        run = _next_run(data_dir / "lots-run")
        # The lots' expiry (GS1 AI 17, YYMMDD): a year from the day the run starts.
        self.expiry = (datetime.date.today() + datetime.timedelta(days=365)).strftime("%y%m%d")
        by_profile = {box.board.driver.profile: box for box in boxes}
        stories = {
            "coldroom": "M→D→R→P",
            "door": "M→D→R, then recalled",
            "failing": "M→D, its box's readings quarantine it",
            "dropout": "M→D, held for damage, released by QA",
        }
        self.lots = {
            profile: Lot(f"DEMO{run}-{profile.upper()}", box.key, story)
            for profile, story in stories.items()
            if (box := by_profile.get(profile)) is not None
        }

    # -- transactions ----------------------------------------------------------------------

    async def _send(
        self,
        who: str,
        tx_type: str,
        fields: dict[str, Any],
        contract: str = "lots",
        time_ms: int | None = None,
    ) -> None:
        """Sign `fields` as `who` at `time_ms` (default now) and send them; raise
        StepRefused unless applied (201)."""
        status, answer = await cli_client.send_tx(
            self.cloud, self.keys.secrets[who], contract, tx_type, fields, time_ms
        )
        if status != 201:
            raise StepRefused(
                f"{contract}/{tx_type} by the {who}: HTTP {status}: {answer.get('reason')}: "
                f"{answer.get('detail')}"
            )

    async def setup(self, owner: bytes) -> None:
        """Admit the participants (once), give the auditor its replay grant, commission the
        lots, ship each to the distributor and attach its box to the shipment. Raises
        StepRefused, aiohttp.ClientError."""
        admitted = self.keys.folder / "admitted"  # the roles admitted, one a line
        done = set(admitted.read_text().split()) if admitted.exists() else set()
        for role in [r for r in PARTIES if r not in done]:
            name, licence = _ADMISSIONS[role]
            owners = [didkey.from_secret(owner)] if role == "manufacturer" else []
            fields = lots_cli.admit_fields(
                self.keys.did(role), role, name, "DE", (licence, "BfArM"), owners
            )
            try:
                await self._send("regulator", "admit", fields, contract="participants")
            except StepRefused as e:
                if "HTTP 409: admitted:" not in str(e):  # else admitted, but not noted
                    raise
            with admitted.open("a") as f:
                f.write(f"{role}\n")
        await self._grant_replay()
        expiry = self.expiry
        for profile, lot in self.lots.items():
            signed = TIGHT if profile == "failing" else lots_cli.storage_profile("2-8C")
            fields = lots_cli.commission_fields(GTIN, lot.lot, expiry, QUANTITY, "pack", signed)
            await self._send("manufacturer", "commission", fields)
            serials = {"gtin": GTIN, "lot": lot.lot, "serials": pack_serials(lot)}
            await self._send("manufacturer", "serialize", serials)  # every pack's serial
            await self._ship(lot, "manufacturer", "distributor", QUANTITY, "MD")
            now = int(time.time() * 1000)
            box = didkey.from_point(b"\x02" + lot.box_key)
            attach = lots_cli.attach_fields(box, now, None, {"shipment": lot.shipment("MD")})
            await self._send("manufacturer", "attach", attach, time_ms=now)  # starts then

    async def _grant_replay(self) -> None:
        """The regulator gives the auditor a replay grant for both contracts (a grant it
        holds already is simply given again)."""
        change = config_entry.ConfigChange(
            config_entry.GRANT_ADD,
            int(time.time()),
            key=self.keys.xonly("auditor"),
            contracts=("lots", "participants"),
        )
        request = config_entry.sign_request(self.keys.secrets["regulator"], change)
        status, answer = await post_json(f"{self.cloud}/v1/config", request)
        if status != 201:
            raise StepRefused(f"replay grant: HTTP {status}: {answer.get('reason')}")

    async def _ship(self, lot: Lot, sender: str, receiver: str, quantity: int, leg: str) -> None:
        receiver_did = self.keys.did(receiver)
        fields = lots_cli.ship_fields(
            GTIN, lot.lot, lot.shipment(leg), receiver_did, quantity, None
        )
        await self._send(sender, "ship", fields)

    async def _receive(self, lot: Lot, receiver: str, quantity: int, leg: str) -> None:
        fields = lots_cli.receive_fields(lot.shipment(leg), quantity, None)
        await self._send(receiver, "receive", fields)

    # -- the story -------------------------------------------------------------------------

    async def story(self) -> None:
        """Move the lots, one moment every STEP_S seconds; a refused step is printed and
        the story goes on (that lot stays where it was)."""
        for moment in self._moments():
            await asyncio.sleep(STEP_S)
            for lot, what, step in moment:
                try:
                    await step()
                    print(f"   lot {lot.lot}: {what}", flush=True)
                except (StepRefused, aiohttp.ClientError, ValueError) as e:
                    print(f"   lot {lot.lot}: not {what}: {e}", flush=True)

    def _moments(self) -> list[list[Step]]:
        """The story's steps, grouped in moments a few seconds apart."""
        cold, door, flaky = (self.lots.get(p) for p in ("coldroom", "door", "dropout"))
        moments: list[list[Step]] = [
            [
                self._move(lot, "manufacturer", "distributor", QUANTITY)[1]
                for lot in (cold, door, flaky)
                if lot
            ],
            [],
            [],
            [],
            [],
        ]
        if cold:
            to_retailer = self._move(cold, "distributor", "retailer", 50)
            to_pharmacy = self._move(cold, "retailer", "pharmacy", 20)
            for moment, step in zip(moments[1:], [*to_retailer, *to_pharmacy], strict=True):
                moment.append(step)
        if door:
            moments[1:3] = [
                [*m, step]
                for m, step in zip(
                    moments[1:3], self._move(door, "distributor", "retailer", 60), strict=True
                )
            ]
        if flaky:
            hold = lots_cli.hold_fields(GTIN, flaky.lot, "damage", "cartons dented")
            moments[2].append(
                (flaky, "held for damage", partial(self._send, "distributor", "hold", hold))
            )
            reason = "inspected: packs intact"
            dispose = lots_cli.dispose_fields(GTIN, flaky.lot, "released", reason)
            moments[3].append(
                (flaky, "disposed by QA", partial(self._send, "manufacturer", "dispose", dispose))
            )
        if cold:  # at the pharmacy: two packs dispensed, the first scanned again
            first, second = pack_serials(cold)[:2]
            moments.append(
                [
                    (cold, f"pack {first} dispensed", partial(self._dispense, first)),
                    (cold, f"pack {second} dispensed", partial(self._dispense, second)),
                    (
                        cold,
                        f"pack {first} scanned again: refused, suspect report filed (the "
                        "manufacturer and the regulator are alerted in their feeds)",
                        partial(self._dispense_again, cold, first),
                    ),
                ]
            )
        if door:
            recall = lots_cli.recall_fields(GTIN, door.lot, "II", "door seal defect at packing")
            moments[4].append(
                (door, "recall signed", partial(self._send, "manufacturer", "recall", recall))
            )
        return moments

    async def _dispense(self, serial: str) -> None:
        fields = {"gtin": GTIN, "serial": serial, "status": "dispensed"}
        await self._send("pharmacy", "decommission", fields)

    async def _dispense_again(self, lot: Lot, serial: str) -> None:
        """A second dispense of `serial`: the ledger refuses it, so the pharmacy files the
        suspect report (what `pharmasync packs decommission` does). Raises StepRefused if
        the second dispense is not refused as decommissioned or the report is refused."""
        try:
            await self._dispense(serial)
        except StepRefused as e:
            if "HTTP 409: decommissioned:" not in str(e):
                raise
        else:
            raise StepRefused(f"a second dispense of {serial} was applied")
        report = {"gtin": GTIN, "serial": serial, "reason": "decommissioned", "lot": lot.lot}
        await self._send("pharmacy", "suspect", {**report, "place": "Demo Pharmacy, Berlin"})

    def _move(self, lot: Lot, sender: str, receiver: str, quantity: int) -> tuple[Step, Step]:
        """The two steps of moving `quantity` units: `sender` ships, `receiver` receives."""
        leg = f"{sender[0]}{receiver[0]}".upper()  # MD, DR, RP: the shipment id's suffix
        return (
            (
                lot,
                f"shipped to the {receiver}",
                partial(self._ship, lot, sender, receiver, quantity, leg),
            ),
            (
                lot,
                f"received by the {receiver}",
                partial(self._receive, lot, receiver, quantity, leg),
            ),
        )

    async def watch(self) -> None:
        """Print each lot's quality status and recall as they change on the ledger's public
        records (each change once; a lot starts released), and each suspect-pack alert as
        it reaches the manufacturer's feed."""
        seen = {lot.lot: ("released", False) for lot in self.lots.values()}
        feed = _Feed(self.cloud, self.keys.secrets["manufacturer"])
        async with aiohttp.ClientSession(base_url=self.cloud) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, ValueError, KeyError, TypeError):
                    for event in await feed.new_events(http):
                        if event.get("type") == "suspect":
                            print(
                                f"!! SUSPECT PACK {event['gtin']}/{event['serial']} (lot "
                                f"{event['lot']}): {event['verdict']}, scanned at "
                                f"{event['place']} — in the manufacturer's and the "
                                "regulator's feeds",
                                flush=True,
                            )
                for lot in self.lots.values():
                    try:
                        async with http.get(f"/v1/lots/{GTIN}/{lot.lot}") as r:
                            records = (await r.json())["records"]
                        quality = records["quality"]["value"] or {}
                        recall = records["recall"]["value"]
                    except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                        continue
                    status = str(quality.get("status", "released"))
                    was_status, was_recalled = seen[lot.lot]
                    if status != was_status:
                        why = f"{quality.get('reason')} [{quality.get('source')}]"
                        print(f"** lot {GTIN}/{lot.lot} {status.upper()}: {why}", flush=True)
                    if recall and not was_recalled:
                        why = f"class {recall.get('class')}, {recall.get('reason')}"
                        print(f"** lot {GTIN}/{lot.lot} RECALLED: {why}", flush=True)
                    seen[lot.lot] = (status, was_recalled or bool(recall))
                await asyncio.sleep(WATCH_S)

    # -- what the banner prints ------------------------------------------------------------

    def lines(self) -> list[str]:
        """One line per lot: its id, its box, its story."""
        return [
            f"{GTIN}/{lot.lot:<16} box {lot.box_key.hex()[:16]}  {lot.story}"
            for lot in self.lots.values()
        ]

    def try_commands(self, exe: str) -> list[str]:
        """Commands to follow the lots, with absolute paths (they write nothing): the
        failing box's lot's history, the recalled lot's trace, the retailer's feed (its
        shipments, the recall), the auditor's replay."""
        q = shlex.quote
        url, maker = self.cloud, q(str(self.keys.path("manufacturer")))
        commands = []
        if failing := self.lots.get("failing"):
            commands.append(
                f"{exe} lots history --gtin {GTIN} --lot {failing.lot} --key {maker} --cloud {url}"
            )
        if door := self.lots.get("door"):
            commands.append(
                f"{exe} lots trace --gtin {GTIN} --lot {door.lot} --key {maker} --cloud {url}"
            )
        if cold := self.lots.get("coldroom"):
            pharmacy, good = q(str(self.keys.path("pharmacy"))), pack_serials(cold)[7]
            commands.append(
                f"{exe} packs verify --gtin {GTIN} --serial {good} --lot {cold.lot} "
                f"--key {pharmacy} --cloud {url}"
            )
        retailer, auditor = q(str(self.keys.path("retailer"))), q(str(self.keys.path("auditor")))
        commands.append(f"{exe} feed --key {retailer} --cloud {url}")
        commands.append(f"{exe} verify --replay --cloud {url} --key {auditor}")
        return commands

    def counter_lines(self, exe: str, folder: Path) -> list[str]:
        """At the pharmacy counter: the GS1 Digital Links a phone opens (a pack of the
        coldroom lot still on the shelf, the recalled lot), then the commands that fetch the
        log's key and the pack's public proof into `folder` and check it offline."""
        cold, door = self.lots.get("coldroom"), self.lots.get("door")
        if cold is None or door is None:
            return []
        q, today = shlex.quote, datetime.date.today()
        pack = digital_link.pack_uri(
            GTIN, cold.lot, pack_serials(cold)[7], today, self.expiry, base=self.cloud
        )
        vkey, proof = q(str(folder / "ledger.vkey")), q(str(folder / "pack-proof.bin"))
        return [
            f"a pack on the shelf:   {pack}",
            f"the recalled lot:      {digital_link.lot_uri(GTIN, door.lot, today, self.cloud)}",
            f"curl -s {self.cloud}/v1/log/vkey -o {vkey}",
            f"curl -s -H 'Accept: {public_proof.MEDIA_TYPE}' {q(pack)} -o {proof}",
            f"{exe} verify --public {proof} --log-vkey @{vkey} --link {q(pack)}",
        ]


class _Feed:
    """A participant's notification feed, read a page at a time (GET /v1/feed), signing
    in again when its token expires."""

    def __init__(self, cloud: str, secret: bytes) -> None:
        self.cloud, self.secret = cloud, secret
        self.token, self.after = "", 0

    async def new_events(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """The events after the last one returned. Raises aiohttp.ClientError."""
        if not self.token:
            self.token, _ = await sign_in(http, self.cloud, self.secret)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with http.get(f"/v1/feed?after={self.after}", headers=headers) as r:
            if r.status != 200:
                self.token = ""  # expired (401), or not yet admitted: sign in next time
                return []
            page = await r.json()
        self.after = int(page["next"])
        return [entry["event"] for entry in page["events"]]


def pack_serials(lot: Lot) -> list[str]:
    """The serials of a demo lot's QUANTITY packs (GS1 AI 21, unique per GTIN: the lot's
    run and name in them): DEMO12-COLDROOM's are D12COLDROOM0000 to D12COLDROOM0099."""
    prefix = lot.lot.replace("DEMO", "D").replace("-", "")[:14]
    return [f"{prefix}{n:04d}" for n in range(QUANTITY)]


def _next_run(path: Path) -> int:
    """This run's number (1, 2, …), kept in `path` so each run takes new lot numbers."""
    try:
        run = int(path.read_text().strip()) + 1
    except (FileNotFoundError, ValueError):
        run = 1
    path.write_text(f"{run}\n")
    return run
