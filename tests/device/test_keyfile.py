"""Secret key files (device/keyfile.py): created whole or not at all, mode 0600, never over
an existing file. Crashes are real: a child process is SIGKILLed at the worst moments."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from device import keyfile

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("11" * 32).hex()


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_a_key_file_is_created_whole_and_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    keyfile.create_secret_text(path, KEY)
    assert path.read_text() == KEY + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _leftovers(tmp_path, "secret.key") == []  # the temporary name is gone


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("the key in use\n")
    with pytest.raises(FileExistsError):
        keyfile.create_secret_text(path, KEY)
    assert path.read_text() == "the key in use\n"
    assert _leftovers(tmp_path, "secret.key") == []


def test_a_dangling_symlink_is_not_followed(tmp_path: Path) -> None:
    # link(2) refuses an existing name, symlinks included: the key is not written elsewhere.
    path = tmp_path / "secret.key"
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        keyfile.create_secret_text(path, KEY)
    assert not (tmp_path / "elsewhere").exists()


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        keyfile.create_secret_text(tmp_path / "secret.key", KEY)
    assert list(tmp_path.iterdir()) == []


# The child writes a key and is killed (SIGKILL: no cleanup runs) at the named step.
CRASH = """
import os, signal, sys
from pathlib import Path
from device import keyfile

def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)

step = sys.argv[2]
if step == "mid-write":  # half the bytes written, then the power goes
    real_fdopen = os.fdopen
    class Half:
        def __init__(self, f): self.f = f
        def __enter__(self): return self
        def __exit__(self, *exc): return False
        def write(self, data):
            self.f.write(data[: len(data) // 2]); self.f.flush(); die()
    os.fdopen = lambda fd, mode: Half(real_fdopen(fd, mode))
elif step == "before-fsync":
    os.fsync = die
elif step == "before-link":
    os.link = die
keyfile.create_secret_file(Path(sys.argv[1]), bytes(range(64)))
"""


@pytest.mark.parametrize("step", ["mid-write", "before-fsync", "before-link"])
def test_a_crash_while_writing_leaves_no_half_file(tmp_path: Path, step: str) -> None:
    path = tmp_path / "secret.key"
    child = subprocess.run(
        [sys.executable, "-c", CRASH, str(path), step], cwd=ROOT, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert not path.exists()  # nothing under the key's name: not empty, not half
    leftovers = list(tmp_path.iterdir())
    assert all(p.name.startswith(".secret.key.") for p in leftovers)  # never read as a key
    keyfile.create_secret_file(path, bytes(range(64)))  # a second try makes it whole
    assert path.read_bytes() == bytes(range(64))


def test_a_crash_after_linking_leaves_the_whole_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    script = CRASH.replace('elif step == "before-link":', 'elif step == "after-link":')
    script = script.replace(
        "    os.link = die", "    real = os.link\n    os.link = lambda a, b: (real(a, b), die())"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(path), "after-link"], cwd=ROOT, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert path.read_bytes() == bytes(range(64))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
