"""The whole chain for real: simulated boxes (the real firmware loop) publish through a
real Mosquitto to the gateway, which uploads to the real cloud ledger, run as an operator
runs it (`pharmasync cloud serve`, registration with `pharmasync cloud register`).

The cloud is SIGKILLed and restarted twice mid-stream. Afterwards every reading the boxes
sent is in the ledger exactly once, every checkpoint served along the way is consistent
with the last one (no fork), the gateway kept a receipt per batch, and proof bundles of
sampled readings verify offline with `pharmasync verify`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from cloud import serve_child
from device import reading, schnorr, simulate
from gateway import app as gateway_app
from gateway import batch, merkle, settings
from gateway.checkpoint import open_checkpoint
from gateway.note import Verifier
from tests.conftest import Mosquitto, free_port
from tests.gateway.test_gateway_e2e import register, sim_settings

EXE = serve_child.EXE
SITE = "e2e"


def pharmasync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60)


class CloudProcess:
    """`pharmasync cloud serve` in a subprocess, killed and restarted at will."""

    def __init__(self, data: Path, port: int, owner: str) -> None:
        self.data, self.port, self.owner = data, port, owner
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc, _ = await asyncio.to_thread(
            serve_child.start, self.data, self.port, "--owner", self.owner
        )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)


async def watch_checkpoints(url: str, seen: list[str], http: aiohttp.ClientSession) -> None:
    """Keep every distinct checkpoint the cloud serves, as an auditor polling it would."""
    while True:
        try:
            async with http.get(f"{url}/v1/checkpoint") as r:
                note = await r.text()
                if not seen or seen[-1] != note:
                    seen.append(note)
        except aiohttp.ClientError:
            pass  # the cloud is down: we will see what it serves when it is back
        await asyncio.sleep(0.05)


async def test_boxes_to_ledger_with_cloud_kills_loses_nothing_and_forks_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    owner_key = tmp_path / "owner.key"
    out = pharmasync("cloud", "keygen", str(owner_key))
    assert out.returncode == 0, out.stderr
    owner = schnorr.pubkey(bytes.fromhex(owner_key.read_text())).hex()
    cloud = CloudProcess(tmp_path / "cloud", free_port(), owner)
    gw_data = tmp_path / "gw"
    gw_data.mkdir()
    gw_key = schnorr.pubkey(gateway_app.load_or_create_key(gw_data / "gateway.key"))
    # The owner certifies the gateway's key; the boxes trust the owner's key.
    cert_file = gw_data / "gateway.cert"
    out = pharmasync(
        "gateway", "certify", "--owner-key", str(owner_key), "--gateway-key", gw_key.hex(),
        "--site", SITE, "--days", "30", "--out", str(cert_file),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sim = sim_settings(mosquitto, tmp_path / "boxes", boxes=3, readings=None, owner_key=owner)
    boxes = [simulate.make_box(sim, i) for i in range(3)]
    register(gw_data, boxes)
    gw_settings = settings.from_dict(
        {
            "gateway": {"site": SITE, "data_dir": str(gw_data), "certificate": str(cert_file)},
            "mqtt": {"port": mosquitto.port},
            "batch": {"max_readings": 32, "max_age_s": 0.2},
            "spool": {"commit_interval_s": 0.01},
            "uplink": {"url": cloud.url, "max_backoff_s": 1},
            "status": {"port": 0},
        }
    )
    served: list[str] = []
    async with aiohttp.ClientSession() as http:
        await cloud.start()
        base = ["cloud", "register", "--cloud", cloud.url, "--owner-key", str(owner_key)]
        for what in (["gateway", gw_key.hex()], *(["box", b.key.hex()] for b in boxes)):
            out = pharmasync(*base, *what, "--site", SITE)
            assert out.returncode == 0, out.stderr
        watcher = asyncio.create_task(watch_checkpoints(cloud.url, served, http))
        stop = asyncio.Event()
        gw = asyncio.create_task(gateway_app.serve(gw_settings, stop))
        await asyncio.sleep(0.3)
        streams = [asyncio.create_task(b.run()) for b in boxes]
        try:
            for _ in range(2):
                await asyncio.sleep(1.5)
                await cloud.kill()  # mid-stream, mid-upload
                await asyncio.sleep(0.5)
                await cloud.start()
            await asyncio.sleep(1.0)
        finally:
            for b in boxes:
                b.interval = 3600  # stop taking readings; keep the link to drain
        spool = sqlite3.connect(gw_data / "spool.sqlite")
        for _ in range(300):  # until every reading is acknowledged, sealed and uploaded
            await asyncio.sleep(0.1)
            unsent = spool.execute(
                "SELECT (SELECT count(*) FROM batches WHERE sent_at IS NULL) + "
                "(SELECT count(*) FROM readings "
                "WHERE id > (SELECT coalesce(max(last_id), 0) FROM batches))"
            ).fetchone()[0]
            if unsent == 0 and all(len(b.backlog) == 0 for b in boxes):
                break
        stop.set()
        await gw
        for t in streams:
            t.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

        # Every reading in the ledger exactly once.
        async with http.get(f"{cloud.url}/v1/log/vkey") as r:
            verifier = Verifier.parse((await r.text()).strip())
        async with http.get(f"{cloud.url}/v1/checkpoint") as r:
            final = open_checkpoint(await r.text(), verifier)
        entries: list[bytes] = []
        while len(entries) < final.size:
            async with http.get(
                f"{cloud.url}/v1/log/entries", params={"start": len(entries), "end": final.size}
            ) as r:
                entries += [bytes.fromhex(e) for e in (await r.json())["entries"]]
        assert merkle.root(entries) == final.root_hash
        leaves: list[bytes] = []
        headers = []
        for index, entry in enumerate(entries):
            if entry[0] == 0x01:
                headers.append(batch.decode(entry[1:]))
                async with http.get(f"{cloud.url}/v1/log/entries/{index}/readings") as r:
                    raw = await r.read()
                leaves += [raw[i : i + reading.SIZE] for i in range(0, len(raw), reading.SIZE)]
        assert [h.seq for h in headers] == list(range(len(headers))), "each batch once, in order"
        seen = [(reading.decode(w).key, reading.decode(w).seq) for w in leaves]
        assert len(seen) == len(set(seen)), "a reading is in the ledger twice"
        for b in boxes:
            assert sorted(s for k, s in seen if k == b.key) == list(range(b.last_seq + 1))
        assert len(leaves) > 100, "the kills interrupted a real stream"
        receipts = spool.execute("SELECT count(*) FROM batches WHERE receipt IS NULL").fetchone()
        assert receipts[0] == 0, "the gateway kept a receipt for every batch"
        spool.close()

        # Every checkpoint served along the way is a prefix of the final log: no fork.
        assert len(served) >= 3
        tree = merkle.MerkleTree(entries)
        for note in served:
            cp = open_checkpoint(note, verifier)
            assert cp.root_hash == tree.root(cp.size), f"checkpoint {cp.size} was forked"
            async with http.get(
                f"{cloud.url}/v1/log/proof/consistency",
                params={"old": cp.size, "new": final.size},
            ) as r:
                proof = [bytes.fromhex(h) for h in (await r.json())["proof"]]
            merkle.verify_consistency(cp.size, final.size, cp.root_hash, final.root_hash, proof)

        # Proof bundles of sampled readings verify offline, with only the pinned log key.
        vkey_file = tmp_path / "log.vkey"
        vkey_file.write_text(verifier.to_vkey() + "\n")
        for b in boxes:
            for seq in (0, b.last_seq // 2, b.last_seq):
                async with http.get(f"{cloud.url}/v1/readings/{b.key.hex()}/{seq}/proof") as r:
                    assert r.status == 200
                    bundle_file = tmp_path / f"{b.id}-{seq}.json"
                    bundle_file.write_text(json.dumps(await r.json()))
                out = pharmasync("verify", str(bundle_file), "--log-vkey", f"@{vkey_file}")
                assert out.returncode == 0, out.stdout + out.stderr
        # An auditor follows the whole log, re-verifying every batch and reading.
        state = tmp_path / "auditor.json"
        out = pharmasync(
            "verify",
            "--cloud",
            cloud.url,
            "--log-vkey",
            f"@{vkey_file}",
            "--state",
            str(state),
            "--once",
            "--readings",
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"size {final.size}" in out.stdout
        await cloud.kill()
    assert os.path.exists(tmp_path / "cloud" / "ledger.sqlite")
