"""Every `pharmasync` command's --help shows examples, and every example works.

The test walks the argparse tree of `pharmasync` (cloud.cli.build_parser): each command and
command group must list examples in its epilog. Then, in one temporary folder, it runs the
examples as a user would, in the order a user would (keys, a cloud, registration, boxes, a
gateway, ...) against real things: a cloud started by an example, a private Mosquitto, the
files earlier examples wrote. Only these stand-ins are made: the ports (the examples' 8480,
7380 and 1883 become free ones), the box folder's id (the examples' 9849e78b1c2d3e4f becomes
the box `device provision` made) and the files the examples say come from elsewhere
(gateway.toml, a reading and a batch header to inspect, the log's key a user saves with
curl). Examples that cannot run here are only parsed; PARSE_ONLY says why, one by one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.cli import build_parser
from device.cliutil import examples_of
from tests.conftest import GOLDEN, Mosquitto, free_port

EXE = Path(sys.executable).parent / "pharmasync"
BOX_PLACEHOLDER = "9849e78b1c2d3e4f"

# Examples that are only parsed here, by a word they contain, and why.
PARSE_ONLY = {
    "pharmasync demo": "binds the default port 8480, which a test cannot assume free; the "
    "next demo example is the same run on a port the test picks",
    "--database": "needs a PostgreSQL database of its own (tests/test_cli.py runs `cloud "
    "serve` on the PostgreSQL server; tests/cloud run the ledger on both engines)",
    "proof.json": "needs the proof bundle of a stored reading: tests/test_demo.py runs the "
    "demo's printed `verify` commands on a real one",
    "--public check": "needs a lot's public check saved from the resolver (/01/...): "
    "tests/cloud/audit/test_public_proof.py runs `verify --public` on real ones",
    "receipt.json": "needs a cosigned receipt of a stored batch: tests/cloud/"
    "test_verify_receipt.py runs this command on one a real cloud and witness made",
    "--interval 60": "follows a deployed ledger's log until stopped (the --once example "
    "runs against the test's cloud)",
    "ack 3f2a9c1e": "acknowledges an alarm the gateway raised: tests/gateway/"
    "test_escalation.py acknowledges real ones with this command",
    "ack-signed ack.json": "needs an acknowledgement signed by an authorised key for a raised "
    "alarm: tests/gateway/test_escalation.py applies real ones",
    "lots attach": "needs the registry's boxes in the lots contract's state, which the cold "
    "chain's wiring into the ledger service brings; tests/cloud/test_lots_cli.py runs it to "
    "the ledger's answer",
    "pharmacy.key": "needs a pharmacy holding a serialized lot: tests/cloud/test_packs_cli.py "
    "decommissions, reports and undoes with these commands",
    "serials.txt": "reads a file of serials; tests/cloud/test_packs_cli.py registers one",
    "--follow": "follows the feed until Ctrl-C: tests/cloud/test_lots_cli.py follows a real "
    "one and sees a recall arrive",
}
# Commands whose examples name a thing only a running site has; their own tests run the
# same commands on real ones.
RUN_ELSEWHERE = {
    ("gateway", "alarms", "ack"): "tests/gateway/test_escalation.py acknowledges an alarm a "
    "gateway raised with `gateway alarms ... ack ID --by NAME`",
    ("gateway", "alarms", "ack-signed"): "tests/gateway/test_escalation.py applies a signed "
    "acknowledgement of a raised alarm with `gateway alarms ... ack-signed FILE`",
    ("lots", "attach"): "tests/cloud/test_lots_cli.py signs and sends an attach with the "
    "real command (see PARSE_ONLY)",
    ("packs", "decommission"): "tests/cloud/test_packs_cli.py decommissions packs a pharmacy "
    "holds, twice (the suspect report), with the real command",
    ("packs", "undo"): "tests/cloud/test_packs_cli.py undoes a pharmacy's decommission with "
    "the real command",
}
# Hardware: `device run` without --simulate reads a DHT22 on a Raspberry Pi's GPIO, and
# `device flash` without --dry-run writes to an ESP32.
NEEDS_A_PI = "needs a DHT22 on a Raspberry Pi's GPIO (tests/test_cli.py checks its error here)"
NEEDS_A_BOARD = "needs an ESP32 on a serial port (the --dry-run example runs)"

# The order a user follows; a command not listed runs after these, in tree order.
ORDER = [
    ("cloud", "keygen"),
    ("device", "keygen"),
    ("gateway", "key"),
    ("gateway", "certify"),
    ("cloud", "serve"),
    ("cloud", "register"),
    ("cloud", "owners"),
    ("cloud", "ack-keys"),
    ("participants",),
    ("lots", "commission"),
    ("lots", "gs1-prefix"),
    ("lots", "ship"),
    ("lots", "receive"),
    ("lots", "status"),
    ("cloud", "grants"),
    ("lots", "split"),
    ("lots", "hold"),
    ("lots", "dispose"),
    ("lots", "recall"),
    ("packs", "serialize"),
    ("packs", "verify"),
    ("lots", "trace"),
    ("feed",),
    ("lots", "history"),
    ("stock",),  # its minimum is the regulator's: before the handover
    ("lots", "epcis"),  # the lot's history as EPCIS, after it was made
    ("cloud", "regulators"),  # last of the regulator's: the examples after it sign as others
    ("device", "provision"),
    ("gateway", "boxes", "add"),
    ("gateway", "boxes", "list"),
    ("gateway", "run"),
    ("device", "simulate"),
    ("device", "run"),
    ("device", "flash"),
    ("device", "inspect"),
    ("gateway", "inspect-batch"),
    ("witness",),
    ("verify",),
    ("demo",),
    ("gateway", "boxes", "remove"),
]
# Long-running commands: started, run until this appears in their output, then Ctrl-C.
SERVERS = {
    ("cloud", "serve"): "cloud ledger on",
    # (connected, not just listening: Ctrl-C during its MQTT SUBSCRIBE makes aiomqtt log a
    # KeyError traceback, a shutdown race outside this test's subject)
    ("gateway", "run"): "MQTT connected to",
    ("device", "run"): "running:",  # its start line, then Ctrl-C
    ("witness",): "listening on",
}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) of the tree, the root first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def command_path(words: list[str]) -> tuple[str, ...]:
    """The subcommands named in `words` (options between them skipped)."""
    parser, path = build_parser(), []
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            parser = subs[0].choices[word]
            path.append(word)
    return tuple(path)


def all_examples() -> list[str]:
    seen: dict[str, None] = {}
    for _, parser in walk(build_parser()):
        seen.update(dict.fromkeys(examples_of(parser)))
    return list(seen)


def test_every_command_has_examples() -> None:
    missing = [" ".join(path) for path, p in walk(build_parser()) if not examples_of(p)]
    assert missing == [], f"commands whose --help has no examples: {missing}"


def why_only_parsed(example: str, path: tuple[str, ...]) -> str | None:
    if path == ("device", "run") and "--simulate" not in example:
        return NEEDS_A_PI
    if path == ("device", "flash") and "--dry-run" not in example:
        return NEEDS_A_BOARD
    for word, reason in PARSE_ONLY.items():
        if example == word or (word != "pharmasync demo" and word in example):
            return reason
    return None


class Workspace:
    """The folder the examples run in, and what stands in for the examples' ports."""

    def __init__(self, root: Path, broker: Mosquitto) -> None:
        self.root = root
        self.ports = {"8480": str(free_port()), "7380": str(free_port())}
        self.broker = broker
        self.box_id = BOX_PLACEHOLDER
        self.cloud: subprocess.Popen[str] | None = None
        # `verify --cloud` keeps its state under $XDG_STATE_HOME: here, not in ~/.local.
        self.env = dict(os.environ, XDG_STATE_HOME=str(root / "state"))
        status = free_port()
        (root / "gateway.toml").write_text(
            '[gateway]\nsite = "warehouse-1"\ndata_dir = "gw-data"\n'
            f"[mqtt]\nport = {broker.port}\n[status]\nport = {status}\n"
            f'[uplink]\nurl = "http://127.0.0.1:{self.ports["8480"]}"\n'
        )
        readings = json.loads((GOLDEN / "reading-v1.json").read_text())
        batches = json.loads((GOLDEN / "batch-v1.json").read_text())
        (root / "reading.hex").write_text(readings["valid"][0]["wire"] + "\n")
        (root / "header.hex").write_text(batches["headers"][0]["wire"] + "\n")

    def argv(self, example: str) -> list[str]:
        """The example's words with the workspace's ports and box id standing in."""
        text = example.replace("127.0.0.1:1883", f"127.0.0.1:{self.broker.port}")
        text = text.replace(BOX_PLACEHOLDER, self.box_id)
        for port, ours in self.ports.items():
            text = re.sub(rf"\b{port}\b", ours, text)
        return shlex.split(text)[1:]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *argv], cwd=self.root, capture_output=True, text=True, timeout=120,
            env=self.env,
        )  # fmt: skip

    def serve(self, argv: list[str], ready: str, keep: bool = False) -> str:
        """Start a long-running example, wait until `ready` shows in its output, stop it
        with Ctrl-C (unless `keep`) and return its output; it must exit 0."""
        log = self.root / "logs" / f"{'-'.join(command_path(argv))}-{time.monotonic_ns()}.txt"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(EXE), *argv], cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                text=True, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + (60 if ready else 3)
        while time.monotonic() < deadline and (not ready or ready not in log.read_text()):
            assert proc.poll() is None, f"{argv} exited early: {log.read_text()}"
            time.sleep(0.2)
        assert not ready or ready in log.read_text(), f"{argv} never said {ready!r}"
        if keep:
            self.cloud = proc
            return log.read_text()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        seen = log.read_text()
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {seen}"
        assert "Traceback" not in seen, seen
        return seen

    def stop_cloud(self) -> None:
        """Stop the cloud an example started (Ctrl-C); it must exit 0."""
        assert self.cloud is not None
        self.cloud.send_signal(signal.SIGINT)
        assert self.cloud.wait(timeout=60) == 0
        self.cloud = None

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.ports['8480']}{path}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return str(r.read().decode())


def test_every_example_runs_or_at_least_parses(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not EXE.exists():
        pytest.skip(f"console script not installed beside {sys.executable}")
    ws = Workspace(tmp_path, mosquitto)
    examples = all_examples()
    rank = {path: n for n, path in enumerate(ORDER)}

    def order(example: str) -> int:
        path = command_path(shlex.split(example)[1:])
        return min((r for p, r in rank.items() if path[: len(p)] == p), default=len(ORDER))

    ran, parsed_only = [], {}
    try:
        for example in sorted(examples, key=order):  # sorted() keeps tree order within a rank
            argv = ws.argv(example)
            path = command_path(argv)
            reason = why_only_parsed(example, path)
            if reason is not None:
                parsed_only[example] = reason
                continue
            if path == ("demo",) and ws.cloud is not None:
                ws.stop_cloud()  # the demo runs a cloud of its own on the same port
            if path in SERVERS and "--help" not in argv:
                out = ws.serve(argv, SERVERS[path], keep=path == ("cloud", "serve"))
                if path == ("cloud", "serve"):  # what a user saves with curl, once
                    (tmp_path / "ledger.vkey").write_text(ws.get("/v1/log/vkey"))
                if path == ("witness",):  # what its operator hands to log operators
                    vkey = re.search(r"witness vkey: (\S+)", out)
                    assert vkey is not None, out
                    (tmp_path / "witness.vkey").write_text(vkey[1] + "\n")
            else:
                done = ws.run(argv)
                assert done.returncode == 0, f"{example}\n{done.stdout}\n{done.stderr}"
                assert "Traceback" not in done.stderr, done.stderr
                if path == ("device", "provision"):
                    (folder,) = (tmp_path / "boxes").iterdir()
                    ws.box_id = folder.name
            ran.append(example)
        # Every example parses, the ones that ran too, with the files they named in place.
        monkeypatch.chdir(tmp_path)
        for example in examples:
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # --help prints
                    build_parser().parse_args(ws.argv(example))
            except SystemExit as e:
                assert e.code == 0 and "--help" in example, f"does not parse: {example}"
    finally:
        if ws.cloud is not None:
            ws.stop_cloud()
    print(f"{len(ran)} examples ran; only parsed:")
    for example, reason in parsed_only.items():
        print(f"  {example}\n      {reason}")
    # Every command has an example that really ran here, however many are only parsed.
    leaves = {path for path, p in walk(build_parser()) if not p._subparsers}
    untried = leaves - {command_path(ws.argv(example)) for example in ran} - set(RUN_ELSEWHERE)
    assert untried == set(), f"commands none of whose examples ran: {untried}"
