"""`pharmasync lots split|hold|dispose|recall|trace|attach` and `pharmasync feed [--follow]`,
run as a user runs them: real commands against a real `pharmasync cloud serve`, keys made
by `pharmasync cloud keygen`. A lot is split, held, released, recalled; the follower of the
wholesaler's feed prints the recall as it happens; the trace shows each reader what the
matrix allows; refusals exit 1 with the ledger's reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cloud.api.test_workers import EXE, start_cloud

GTIN = "09506000134352"
TRADERS = (("maker", "manufacturer"), ("wholesaler", "distributor"), ("retailer", "retailer"))


class User:
    """A folder with the key files and the URL of a running ledger."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder, self.url = folder, url

    async def run(self, *argv: str) -> tuple[int, str, str]:
        """Run `pharmasync ARGV --cloud URL` in the folder: exit code, stdout, stderr."""
        proc = await asyncio.create_subprocess_exec(
            str(EXE), *argv, "--cloud", self.url, cwd=self.folder,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert b"Traceback" not in err, err.decode()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *argv: str) -> str:
        code, out, err = await self.run(*argv)
        assert code == 0, (argv, out, err)
        return out

    def did(self, name: str) -> str:
        from cloud.contracts import didkey

        xonly = bytes.fromhex((self.folder / f"{name}.pub").read_text().strip())
        return didkey.from_point(b"\x02" + xonly)


@contextlib.asynccontextmanager
async def ledger(folder: Path, parties: tuple[tuple[str, str], ...]) -> AsyncIterator[User]:
    """Keys for the regulator and each (name, role) in `folder`, a `cloud serve` with that
    regulator, and each party admitted with its role by `participants admit`."""
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    for name in ("regulator", *(name for name, _ in parties)):
        subprocess.run([str(EXE), "cloud", "keygen", str(folder / f"{name}.key")], check=True,
                       capture_output=True)  # fmt: skip
    regulator = "@" + str(folder / "regulator.pub")
    proc, url = await start_cloud(folder / "cloud", "--regulator", regulator)
    try:
        u = User(folder, url)
        for name, role in parties:
            await u.ok("participants", "admit", f"@{name}.pub", "--role", role, "--name", name,
                       "--region", "DE", "--licence", f"L-{name}", "--issuer", "BfArM",
                       "--key", "regulator.key")  # fmt: skip
        yield u
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
async def user(tmp_path: Path) -> AsyncIterator[User]:
    async with ledger(tmp_path, TRADERS) as u:
        lot = ("--gtin", GTIN, "--lot", "L1")
        await u.ok("lots", "commission", *lot, "--expiry", "271231", "--quantity", "100",
                   "--key", "maker.key")  # fmt: skip
        await u.ok("lots", "ship", *lot, "--shipment", "S1", "--to", "@wholesaler.pub",
                   "--quantity", "60", "--key", "maker.key")  # fmt: skip
        await u.ok("lots", "receive", "--shipment", "S1", "--quantity", "60",
                   "--key", "wholesaler.key")  # fmt: skip
        yield u


async def test_split_hold_dispose_recall_and_a_followed_feed(user: User) -> None:
    await user.ok("lots", "split", "--gtin", GTIN, "--lot", "L1", "--child", "L1-A:30",
                  "--child", "L1-B:30", "--key", "wholesaler.key")  # fmt: skip
    b = ("--gtin", GTIN, "--lot", "L1-B")
    await user.ok("lots", "hold", *b, "--kind", "damage", "--reason", "crushed",
                  "--key", "wholesaler.key")  # fmt: skip
    await user.ok("lots", "dispose", *b, "--outcome", "released", "--reason", "intact",
                  "--key", "maker.key")  # fmt: skip
    follower = await asyncio.create_subprocess_exec(
        str(EXE), "feed", "--follow", "--key", "wholesaler.key", "--cloud", user.url,
        cwd=user.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert follower.stdout is not None
    try:
        seen = []
        while not any("disposed" in line for line in seen):  # the feed so far
            seen.append((await asyncio.wait_for(follower.stdout.readline(), 30)).decode())
        await user.ok("lots", "recall", "--gtin", GTIN, "--lot", "L1", "--class", "II",
                      "--reason", "out of specification", "--key", "maker.key")  # fmt: skip
        line = (await asyncio.wait_for(follower.stdout.readline(), 30)).decode()
        assert line.startswith("#") and "recall:" in line and '"L1-B"' in line, line
    finally:
        follower.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(follower.wait(), 30) == 0
    out = await user.ok("feed", "--key", "wholesaler.key", "--json")
    kinds = [json.loads(line)["event"]["type"] for line in out.splitlines()]
    assert kinds == ["admitted", "shipment", "disposed", "recall"]
    out = await user.ok("feed", "--key", "wholesaler.key", "--after", "3")
    assert out.count("\n") == 1 and "recall" in out
    # A recalled child refuses to move: the command says why and exits 1.
    code, _, err = await user.run("lots", "ship", "--gtin", GTIN, "--lot", "L1-A",
                                  "--shipment", "S2", "--to", "@retailer.pub", "--quantity", "1",
                                  "--key", "wholesaler.key")  # fmt: skip
    assert code == 1 and "409" in err and "recalled" in err, err


async def test_trace_shows_each_reader_what_the_matrix_allows(user: User) -> None:
    await user.ok("lots", "split", "--gtin", GTIN, "--lot", "L1", "--child", "L1-A:30",
                  "--child", "L1-B:30", "--key", "wholesaler.key")  # fmt: skip
    trace = ("lots", "trace", "--gtin", GTIN, "--lot", "L1")
    out = await user.ok(*trace, "--key", "maker.key")
    assert f"held by {user.did('maker')} (manufacturer): 40" in out, out
    assert f"held by {user.did('wholesaler')} (distributor): 30" in out, out
    assert "L1-A  parent L1  released, not recalled" in out, out
    figures = json.loads(await user.ok(*trace, "--key", "regulator.key", "--json"))
    assert figures["view"] == "global" and figures["totals"]["held"] == 100
    assert "did:key" not in json.dumps(figures)
    code, _, err = await user.run(*trace, "--key", "retailer.key")  # not in the chain
    assert code == 1 and "403" in err and "compliance = restricted" in err, err


async def test_attach_signs_a_valid_transaction(user: User) -> None:
    """The box is registered nowhere the contract sees (the registry's boxes reach the lots
    contract's state with the cold chain's wiring into the service): the ledger checks the
    signature, the signer's cell and the arguments, then refuses it 409 "box"."""
    subprocess.run([str(EXE), "device", "keygen", str(user.folder / "box.key")], check=True,
                   capture_output=True)  # fmt: skip
    code, _, err = await user.run("lots", "attach", "--box", "@box.pub", "--gtin", GTIN,
                                  "--lot", "L1", "--hours", "48", "--key", "maker.key")  # fmt: skip
    assert code == 1 and "HTTP 409: box:" in err, err
    code, _, err = await user.run("lots", "attach", "--box", "@box.pub", "--key", "maker.key")
    assert code == 2 and "--shipment, or --gtin and --lot" in err, err
