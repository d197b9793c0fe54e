"""`pharmasync cloud serve` as a child process, ready once its /healthz answers.

What the benchmarks and the tests that need a ledger of its own (several workers, kills and
restarts) start; one definition of "spawn it and wait until it serves", so each caller says
only its options.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

EXE = Path(sys.executable).parent / "pharmasync"
STARTUP_S = 20.0


def serve_args(data: Path, port: int, *options: str) -> list[str]:
    """The command line of `pharmasync cloud serve` on `port` with its data in `data`."""
    return [str(EXE), "cloud", "serve", "--data-dir", str(data), "--port", str(port), *options]


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = STARTUP_S
) -> None:
    """Return once GET `url`/healthz answers 200. Raises RuntimeError naming `what` (e.g.
    where its log is) if `proc` exits first or `timeout_s` passes; the process is killed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the cloud exited with {proc.returncode} ({what})")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the cloud at {url} did not answer /healthz in {timeout_s:.0f} s ({what})")


def start(
    data: Path, port: int, *options: str, log: IO[bytes] | int | None = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `pharmasync cloud serve` with `options`, its output (stdout and stderr) to
    `log`; return the process and its URL once it serves. Raises RuntimeError as
    wait_healthy. Creates `data` if missing."""
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(serve_args(data, port, *options), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    where = f"its log: {getattr(log, 'name', 'not kept')}"
    wait_healthy(url, proc, where)
    return proc, url
