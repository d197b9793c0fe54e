"""`pharmasync cloud grants` and `cloud regulators` (cloud/commands.py): a regulator's key
file signs a replay grant or a handover, the cloud applies it as a configuration entry,
and what it grants is what `verify --replay` can then do. Against a real cloud app on
SQLite and PostgreSQL; the command runs on a thread of its own (it runs its own loop)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from cloud.audit.replay import replay
from cloud.cli import main
from tests.cloud.api.test_app import Cloud
from tests.cloud.api.test_tx import admit, applied
from tests.cloud.contracts.world import REGULATOR, party

AUDITOR = party("auditor")


@pytest.fixture
def cloud(regulated: Cloud) -> Cloud:
    """The regulated cloud (tests/cloud/conftest.py), by the name these tests use."""
    return regulated


def key_file(folder: Path, name: str, secret: bytes) -> str:
    path = folder / f"{name}.key"
    path.write_text(secret.hex() + "\n")
    path.chmod(0o600)
    return str(path)


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_a_grant_given_and_withdrawn_decides_the_replay(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await applied(cloud, admit("M"))
    url = cloud.url("").rstrip("/")
    regulator = key_file(tmp_path, "regulator", REGULATOR.secret)
    grant = ["cloud", "grants", "--cloud", url, "--regulator-key", regulator]
    async with aiohttp.ClientSession() as session:
        assert (await replay(url, AUDITOR.secret, session)).replayed is None

        assert await run(*grant, "add", AUDITOR.did, "--contracts", "participants,lots") == 0
        assert "replay grant for lots, participants given to" in capsys.readouterr().out
        report = await replay(url, AUDITOR.secret, session)
        assert (report.parted_at, report.replayed) == (None, 1), report.render()

        assert await run(*grant, "remove", AUDITOR.xonly.hex(), "--contracts", "lots") == 0
        assert await run(*grant, "remove", AUDITOR.xonly.hex(), "--contracts", "participants") == 0
        capsys.readouterr()
        withdrawn = await replay(url, AUDITOR.secret, session)
        assert withdrawn.replayed is None and "bodies not replayed" in withdrawn.render()


async def test_only_a_regulator_signs_and_bad_arguments_are_named(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cloud.url("").rstrip("/")
    stranger = key_file(tmp_path, "stranger", party("stranger").secret)
    base = ["cloud", "grants", "--cloud", url]
    assert (
        await run(*base, "--regulator-key", stranger, "add", AUDITOR.did, "--contracts", "lots")
        == 1
    )
    assert "HTTP 403" in capsys.readouterr().err
    regulator = key_file(tmp_path, "regulator", REGULATOR.secret)
    with pytest.raises(SystemExit) as exit_:
        await run(*base, "--regulator-key", regulator, "add", AUDITOR.did, "--contracts", "ehr")
    assert exit_.value.code == 2 and "want some of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        await run(
            *base, "--regulator-key", regulator, "add", "did:key:zNope", "--contracts", "lots"
        )
    assert "not a secp256k1 did:key" in capsys.readouterr().err
    missing = str(tmp_path / "absent.key")
    assert (
        await run(*base, "--regulator-key", missing, "add", AUDITOR.did, "--contracts", "lots") == 2
    )


async def test_a_handover_before_any_transaction(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cloud.url("").rstrip("/")
    successor = party("successor")
    old = key_file(tmp_path, "regulator", REGULATOR.secret)
    new = key_file(tmp_path, "successor", successor.secret)
    regs = ["cloud", "regulators", "--cloud", url]
    assert await run(*regs, "--regulator-key", old, successor.did) == 0
    assert "regulators now" in capsys.readouterr().out
    # The old regulator no longer signs configuration changes; the new one does.
    assert await run(*regs, "--regulator-key", old, REGULATOR.xonly.hex()) == 1
    assert "HTTP 403" in capsys.readouterr().err
    grant = ["cloud", "grants", "--cloud", url, "--regulator-key", new]
    assert await run(*grant, "add", AUDITOR.did, "--contracts", "lots") == 0
    capsys.readouterr()


async def test_a_handover_after_transactions_moves_the_regulators_role(
    cloud: Cloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await applied(cloud, admit("M"))
    url = cloud.url("").rstrip("/")
    successor = party("successor")
    old = key_file(tmp_path, "regulator", REGULATOR.secret)
    new = key_file(tmp_path, "successor", successor.secret)
    assert (
        await run("cloud", "regulators", "--cloud", url, "--regulator-key", old, successor.did) == 0
    )
    grant = ["cloud", "grants", "--cloud", url, "add", AUDITOR.did, "--contracts", "lots"]
    assert await run(*grant[:4], "--regulator-key", old, *grant[4:]) == 1
    assert "HTTP 403" in capsys.readouterr().err
    assert await run(*grant[:4], "--regulator-key", new, *grant[4:]) == 0
