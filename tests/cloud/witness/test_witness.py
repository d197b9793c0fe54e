"""Tests for cloud.witness.server and cloud.witness.client: a real witness on a local port, asked
by the real client, over logs built with gateway.merkle (c2sp.org/tlog-witness)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
import sqlite3
import stat
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from cloud.witness.client import (
    WitnessConflict,
    WitnessRefused,
    add_cosignatures,
    request_cosignature,
)
from cloud.witness.protocol import (
    AddCheckpointRequest,
    MalformedRequest,
    WitnessError,
    parse_size_response,
)
from cloud.witness.server import (
    KEY_FILE,
    MAX_BODY_BYTES,
    NEVER_COSIGNED,
    STATE_FILE,
    WITNESS,
    Cosigned,
    KeyFileError,
    Witness,
    WitnessStore,
    load_or_create_key,
    make_witness_app,
    register,
)
from gateway.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    sign_checkpoint,
    verify_cosignature,
)
from gateway.merkle import MerkleTree
from gateway.note import MalformedNoteError, Signer, open_note, sign_note
from gateway.rfc6962 import EMPTY_ROOT
from tests.conftest import REPO, free_port

ORIGIN = "example.com/log"
# Fixed seeds: every run signs the same notes.
LOG = Signer(ORIGIN, bytes(range(32)))
IMPOSTOR = Signer(ORIGIN, b"\x99" * 32)  # the log's name, another key
OTHER_LOG = Signer("other.example/log", b"\x77" * 32)  # a log this witness does not serve
KEY = CosignatureSigner("witness.example/w1", b"\x42" * 32)
NOW = 1_700_000_000  # the witness's clock in these tests: every cosignature states it

TREE = MerkleTree(b"entry %d" % i for i in range(64))
# A rewritten history: the same first 12 entries, then others.
FORK = MerkleTree([*(b"entry %d" % i for i in range(12)), *(b"forged %d" % i for i in range(52))])


def checkpoint(size: int, tree: MerkleTree = TREE) -> Checkpoint:
    return Checkpoint(ORIGIN, size, tree.root(size))


def signed(size: int, tree: MerkleTree = TREE, signer: Signer = LOG) -> str:
    return sign_checkpoint(Checkpoint(signer.name, size, tree.root(size)), signer)


class Server:
    """The witness app on a free local port, stoppable and restartable on one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = make_witness_app(KEY, {ORIGIN: [LOG.verifier()]}, self.data_dir, clock=lambda: NOW)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def witness(self) -> Witness:
        assert self.runner is not None
        return self.runner.app[WITNESS]

    def latest(self) -> Cosigned:
        return self.witness.store.latest(ORIGIN)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    running = Server(tmp_path)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def cosign(
    session: aiohttp.ClientSession,
    server: Server,
    old: int,
    new: int,
    *,
    tree: MerkleTree = TREE,
    proof: Sequence[bytes] | None = None,
) -> list[str]:
    """Ask for a cosignature of `tree` at `new`, with its proof from `old` unless given."""
    if proof is None:
        proof = tree.consistency_proof(old, new)
    return await request_cosignature(session, server.url, old, proof, signed(new, tree))


async def post(session: aiohttp.ClientSession, server: Server, body: bytes) -> tuple[int, str, str]:
    """POST a raw body; return status, the whole Content-Type header and the text."""
    async with session.post(server.url + "/add-checkpoint", data=body) as response:
        return response.status, response.headers["Content-Type"], await response.text()


def verifies(size: int, line: str, tree: MerkleTree = TREE) -> bool:
    return verify_cosignature(checkpoint(size, tree).to_text(), line, KEY.verifier()) == NOW


# --- cosigning -----------------------------------------------------------------------------


async def test_cosigns_a_growing_log(server: Server, session: aiohttp.ClientSession) -> None:
    old = 0
    for size in (0, 1, 2, 5, 8, 13, 32, 33, 64):
        lines = await cosign(session, server, old, size)
        assert len(lines) == 1 and lines[0].startswith(f"\u2014 {KEY.name} ")
        assert verifies(size, lines[0])
        # The log publishes its checkpoint with the cosignature: both keys verify it.
        note = add_cosignatures(signed(size), lines)
        opened = open_note(note, [LOG.verifier(), KEY.verifier()])
        assert {s.name for s in opened.verified} == {ORIGIN, KEY.name}
        assert server.latest() == Cosigned(size, TREE.root(size))
        old = size


async def test_the_same_checkpoint_is_cosigned_again(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await cosign(session, server, 0, 10)
    again = await cosign(session, server, 10, 10)
    assert verifies(10, again[0])
    assert server.latest() == Cosigned(10, TREE.root(10))


async def test_state_survives_a_restart(server: Server, session: aiohttp.ClientSession) -> None:
    await cosign(session, server, 0, 10)
    await server.stop()
    await server.start()
    with pytest.raises(WitnessConflict) as conflict:
        await cosign(session, server, 0, 12)
    assert conflict.value.size == 10
    assert verifies(12, (await cosign(session, server, 10, 12))[0])
    await server.stop()
    store = WitnessStore(server.data_dir / STATE_FILE)  # a fresh process would read this
    assert store.latest(ORIGIN) == Cosigned(12, TREE.root(12))
    store.close()


async def test_stale_old_size_gets_409_with_the_latest_size(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await cosign(session, server, 0, 10)
    body = AddCheckpointRequest(3, tuple(TREE.consistency_proof(3, 20)), signed(20)).encode()
    # Exactly as the spec puts it: the size, a newline, this Content-Type and no parameter.
    assert await post(session, server, body) == (409, "text/x.tlog.size", "10\n")
    # The client's retry loop: learn the size, send a proof from it.
    with pytest.raises(WitnessConflict) as conflict:
        await cosign(session, server, 0, 20)
    assert verifies(20, (await cosign(session, server, conflict.value.size, 20))[0])


async def test_concurrent_requests_for_one_log_serialise(
    server: Server, session: aiohttp.ClientSession
) -> None:
    sizes = range(1, 21)
    results = await asyncio.gather(
        *(cosign(session, server, 0, n) for n in sizes), return_exceptions=True
    )
    won = [n for n, r in zip(sizes, results, strict=True) if isinstance(r, list)]
    assert len(won) == 1, results
    lost = [r for r in results if not isinstance(r, list)]
    assert all(isinstance(r, WitnessConflict) and r.size == won[0] for r in lost), lost
    assert server.latest().size == won[0]


def test_stores_on_one_file_serialise_like_processes(tmp_path: Path) -> None:
    """Eight witnesses, each with its own connection to one database, race from size 0:
    SQLite's write lock lets exactly one cosign."""
    witnesses = [
        Witness(KEY, {ORIGIN: [LOG.verifier()]}, WitnessStore(tmp_path / STATE_FILE))
        for _ in range(8)
    ]
    start = threading.Barrier(len(witnesses))

    def race(i: int) -> int | None:
        start.wait()
        try:
            witnesses[i].add_checkpoint(0, [], signed(i + 1))
        except WitnessError as e:
            assert e.status == 409
            return None
        return i + 1

    with ThreadPoolExecutor(len(witnesses)) as pool:
        won = [n for n in pool.map(race, range(len(witnesses))) if n is not None]
    assert len(won) == 1
    assert witnesses[0].store.latest(ORIGIN).size == won[0]
    for w in witnesses:
        w.store.close()


async def test_no_cosignature_leaves_unless_the_state_is_written(
    server: Server, session: aiohttp.ClientSession
) -> None:
    db = sqlite3.connect(server.data_dir / STATE_FILE, isolation_level=None)
    db.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    with pytest.raises(WitnessRefused) as refused:
        await cosign(session, server, 0, 5)
    assert refused.value.status == 500
    assert "\u2014" not in refused.value.text
    assert server.latest() == NEVER_COSIGNED
    db.execute("DROP TRIGGER fail")
    db.close()
    assert verifies(5, (await cosign(session, server, 0, 5))[0])


# --- refusals ------------------------------------------------------------------------------


async def test_a_bad_proof_gets_422_and_is_kept_as_evidence(
    server: Server, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    await cosign(session, server, 0, 10)
    proof = TREE.consistency_proof(10, 20)
    bad_proofs = {
        "flipped": [bytes(32), *proof[1:]],
        "short": proof[:-1],
        "another tree's": FORK.consistency_proof(10, 20),
    }
    with caplog.at_level(logging.INFO, logger="pharmasync.witness"):
        for bad in bad_proofs.values():
            with pytest.raises(WitnessRefused) as refused:
                await cosign(session, server, 10, 20, proof=bad)
            assert refused.value.status == 422
            assert "consistency proof 10 -> 20" in refused.value.text
    assert "refused example.com/log (422)" in caplog.text
    assert server.latest() == Cosigned(10, TREE.root(10))
    evidence = server.witness.store.evidence()
    assert len(evidence) == len(bad_proofs)
    assert all(e[0] == ORIGIN and signed(20) in e[2] for e in evidence)
    assert verifies(20, (await cosign(session, server, 10, 20))[0])


async def test_a_proof_from_size_zero_must_be_empty(
    server: Server, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(WitnessRefused) as refused:
        await cosign(session, server, 0, 4, proof=TREE.consistency_proof(2, 4))
    assert refused.value.status == 422
    assert server.latest() == NEVER_COSIGNED


async def test_an_empty_tree_needs_the_empty_root(
    server: Server, session: aiohttp.ClientSession
) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 0, TREE.root(1)), LOG)
    with pytest.raises(WitnessRefused) as refused:
        await request_cosignature(session, server.url, 0, [], note)
    assert refused.value.status == 422
    note = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), LOG)
    assert len(await request_cosignature(session, server.url, 0, [], note)) == 1


async def test_same_size_with_another_root_is_refused_as_a_fork(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await cosign(session, server, 0, 20)
    fork = AddCheckpointRequest(20, (), signed(20, FORK)).encode()
    status, content_type, text = await post(session, server, fork)
    # 409 as the spec says, but plain text: no size to retry from, so no WitnessConflict.
    assert (status, content_type) == (409, "text/plain; charset=utf-8")
    assert f"root hash at size 20: got {FORK.root(20).hex()}" in text
    with pytest.raises(WitnessRefused) as refused:
        await cosign(session, server, 20, 20, tree=FORK)
    assert refused.value.status == 409
    assert server.latest() == Cosigned(20, TREE.root(20))
    assert [e[1].startswith("root hash at size 20") for e in server.witness.store.evidence()] == [
        True,
        True,
    ]


async def test_a_smaller_tree_is_never_cosigned(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await cosign(session, server, 0, 20)
    # old = the size last cosigned: "old <= size" breaks, which the spec answers with 400.
    with pytest.raises(WitnessRefused) as refused:
        await cosign(session, server, 20, 10, proof=[])
    assert refused.value.status == 400
    assert "old size: got 20, want at most the checkpoint's 10" in refused.value.text
    # Any other old size: 409, and a retry from 20 ends as above.
    with pytest.raises(WitnessConflict) as conflict:
        await cosign(session, server, 10, 10)
    assert conflict.value.size == 20
    assert server.latest() == Cosigned(20, TREE.root(20))


async def test_a_rewritten_history_is_refused(
    server: Server, session: aiohttp.ClientSession
) -> None:
    await cosign(session, server, 0, 20)
    for proof in (FORK.consistency_proof(20, 40), TREE.consistency_proof(20, 40)):
        with pytest.raises(WitnessRefused) as refused:
            await cosign(session, server, 20, 40, tree=FORK, proof=proof)
        assert refused.value.status == 422
    assert server.latest() == Cosigned(20, TREE.root(20))


async def test_a_checkpoint_without_the_logs_signature_gets_403(
    server: Server, session: aiohttp.ClientSession
) -> None:
    impostor = signed(5, signer=IMPOSTOR)
    with pytest.raises(WitnessRefused) as refused:
        await request_cosignature(session, server.url, 0, [], impostor)
    assert refused.value.status == 403
    # The log's own signature line over other text: the known key's signature fails.
    forged = signed(5).replace(
        base64.b64encode(TREE.root(5)).decode(), base64.b64encode(TREE.root(6)).decode()
    )
    assert forged != signed(5)
    with pytest.raises(WitnessRefused) as refused:
        await request_cosignature(session, server.url, 0, [], forged)
    assert refused.value.status == 403
    assert server.latest() == NEVER_COSIGNED


async def test_another_log_gets_404(server: Server, session: aiohttp.ClientSession) -> None:
    with pytest.raises(WitnessRefused) as refused:
        await request_cosignature(session, server.url, 0, [], signed(5, signer=OTHER_LOG))
    assert refused.value.status == 404
    assert "'other.example/log'" in refused.value.text


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


MALFORMED = {
    "empty": b"",
    "no empty line before the note": b"old 0\n" + signed(5).encode(),
    "no old line": b"\n" + signed(5).encode(),
    "leading zero": b"old 00\n\n" + signed(5).encode(),
    "sign": b"old +0\n\n" + signed(5).encode(),
    "two spaces": b"old  0\n\n" + signed(5).encode(),
    "capital": b"Old 0\n\n" + signed(5).encode(),
    "31-byte hash": b"old 2\n" + _b64(bytes(31)) + b"\n\n" + signed(5).encode(),
    "non-canonical base64": b"old 2\n" + _b64(bytes(32))[:-2] + b"B=\n\n" + signed(5).encode(),
    "64 proof lines": b"old 2\n" + (_b64(bytes(32)) + b"\n") * 64 + b"\n" + signed(5).encode(),
    "not UTF-8": b"old 0\n\n\xff",
    "unsigned checkpoint": b"old 0\n\n" + checkpoint(5).to_text().encode(),
    "signed text no checkpoint": b"old 0\n\n" + sign_note(f"{ORIGIN}\nfive\n", LOG).encode(),
    "old size above the checkpoint's": b"old 6\n\n" + signed(5).encode(),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_bodies_get_400(
    server: Server, session: aiohttp.ClientSession, body: bytes
) -> None:
    status, _, _ = await post(session, server, body)
    assert status == 400
    assert server.latest() == NEVER_COSIGNED


async def test_an_oversized_body_gets_413(server: Server, session: aiohttp.ClientSession) -> None:
    status, _, _ = await post(session, server, b"old 0\n\n" + b"x" * MAX_BODY_BYTES)
    assert status == 413


# --- the wire format and the client's helpers ----------------------------------------------


def test_request_body_bytes() -> None:
    request = AddCheckpointRequest(3, (b"\x00" * 32, b"\xff" * 32), "a note\n")
    body = request.encode()
    # base64 of 32 zero bytes: python3 -c 'import base64; print(base64.b64encode(bytes(32)))'
    assert body == (
        b"old 3\n"
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        b"//////////////////////////////////////////8=\n"
        b"\n"
        b"a note\n"
    )
    assert AddCheckpointRequest.parse(body) == request


def test_the_client_refuses_to_send_what_the_spec_forbids() -> None:
    with pytest.raises(MalformedRequest, match="at most 63"):
        AddCheckpointRequest(1, (bytes(32),) * 64, signed(5))
    with pytest.raises(MalformedRequest, match="want 32"):
        AddCheckpointRequest(1, (bytes(31),), signed(5))
    with pytest.raises(ValueError, match="old size"):
        AddCheckpointRequest(-1, (), signed(5))


@pytest.mark.parametrize(
    "body", [b"10", b"010\n", b"-1\n", b"", b"1 \n", b"18446744073709551616\n"]
)
def test_size_responses_are_read_strictly(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_size_response(body)


def test_size_response() -> None:
    assert parse_size_response(b"0\n") == 0
    assert parse_size_response(b"20852014\n") == 20852014


async def test_the_client_refuses_answers_that_are_no_cosignatures(
    session: aiohttp.ClientSession,
) -> None:
    answers = {
        "/garbage/add-checkpoint": web.Response(text="not a signature\n"),
        "/empty/add-checkpoint": web.Response(text=""),
        "/badsize/add-checkpoint": web.Response(
            status=409, body=b"ten\n", content_type="text/x.tlog.size"
        ),
    }
    app = web.Application()
    for path, answer in answers.items():
        app.router.add_post(path, _answering(answer))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        for path, answer in answers.items():
            url = f"http://{host}:{port}{path.removesuffix('/add-checkpoint')}/"
            with pytest.raises(WitnessRefused) as refused:
                await request_cosignature(session, url, 0, [], signed(5))
            assert refused.value.status == answer.status
    finally:
        await runner.cleanup()


def _answering(response: web.Response) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        return response

    return handler


def test_add_cosignatures_appends_each_key_once() -> None:
    note = signed(5)
    first = KEY.cosign(checkpoint(5).to_text(), NOW)
    later = KEY.cosign(checkpoint(5).to_text(), NOW + 60)
    other = CosignatureSigner("witness.example/w2", b"\x43" * 32)
    second = other.cosign(checkpoint(5).to_text(), NOW)
    result = add_cosignatures(note, [first, later, second.removesuffix("\n")])
    assert result == note + first + second
    assert add_cosignatures(result, [first]) == result
    opened = open_note(result, [KEY.verifier(), other.verifier()])
    assert len(opened.verified) == 2
    with pytest.raises(MalformedNoteError):
        add_cosignatures(note, ["- not a signature line"])
    with pytest.raises(MalformedNoteError):
        add_cosignatures(checkpoint(5).to_text(), [first])


# --- key and command line ------------------------------------------------------------------


def test_the_key_file_is_made_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    with pytest.raises(KeyFileError, match="give --name"):
        load_or_create_key(path, None)
    made = load_or_create_key(path, "witness.example/w9")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+witness.example/w9+")
    assert load_or_create_key(path, None) == made
    assert load_or_create_key(path, "witness.example/w9") == made
    with pytest.raises(KeyFileError, match=r"got 'witness\.example/other'"):
        load_or_create_key(path, "witness.example/other")
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temp file left behind


def pharmasync_parser() -> argparse.ArgumentParser:
    """The top-level parser as cloud.cli builds it, with only this command registered."""
    parser = argparse.ArgumentParser(prog="pharmasync")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        pharmasync_parser().parse_args(["witness", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--data-dir", "--log-vkey", "--name", "--host", "--port", "tlog-witness"):
        assert option in out


def test_log_vkeys_from_arguments_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "logs.vkeys"
    keys.write_text(f"# the ledger and its next key\n{LOG.verifier().to_vkey()}\n\n")
    vkey = OTHER_LOG.verifier().to_vkey()
    args = pharmasync_parser().parse_args(
        ["witness", "--data-dir", str(tmp_path), "--log-vkey", vkey, "--log-vkey", f"@{keys}"]
    )
    assert args.log_vkey == [OTHER_LOG.verifier(), LOG.verifier()]
    assert (args.host, args.port, args.name) == ("127.0.0.1", 7380, None)
    with pytest.raises(SystemExit) as exit_:
        pharmasync_parser().parse_args(["witness", "--data-dir", "d", "--log-vkey", "log+00"])
    assert exit_.value.code == 2
    assert "log vkey" in capsys.readouterr().err


async def test_the_command_serves_and_keeps_its_key_and_state(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data = tmp_path / "witness"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base = [
        sys.executable,
        "-m",
        "cloud.witness.server",
        "--data-dir",
        str(data),
        "--port",
        str(port),
    ]
    base += ["--log-vkey", LOG.verifier().to_vkey()]

    async def start(*extra: str) -> tuple[asyncio.subprocess.Process, CosignatureVerifier]:
        proc = await asyncio.create_subprocess_exec(
            *base, *extra, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("witness vkey: "), line
        for _ in range(200):  # until it listens
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return proc, CosignatureVerifier.parse(line.split()[-1])
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("the witness did not listen")

    async def stop(proc: asyncio.subprocess.Process) -> str:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        return err.decode()

    proc, verifier = await start("--name", "witness.example/cli")
    assert verifier.name == "witness.example/cli"
    assert stat.S_IMODE(os.stat(data / KEY_FILE).st_mode) == 0o600
    lines = await request_cosignature(session, url, 0, [], signed(5))
    assert verify_cosignature(checkpoint(5).to_text(), lines[0], verifier) > 0
    log = await stop(proc)
    assert "cosigned example.com/log at size 5 (old size 0)" in log

    proc, again = await start()  # no --name: the key on disk
    assert again == verifier
    with pytest.raises(WitnessConflict) as conflict:
        await request_cosignature(session, url, 0, [], signed(7))
    assert conflict.value.size == 5
    log = await stop(proc)
    assert "refused example.com/log (409)" in log
