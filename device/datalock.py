"""One process per data folder (issue 10 §7): each long-running command (`gateway run`,
`cloud serve`, `witness`, `demo`, `device run`, `device simulate`) locks its data folder,
and a second one on the same folder refuses to start with a message naming the first.
Two gateways on one folder would otherwise share one MQTT client id and knock each other
off the broker, and two writers would interleave one spool.

The lock is fcntl.flock on DIR/pharmasync.lock. The kernel releases it when its holder
exits however it exits (SIGKILL and power loss included: it is never on disk), so a crash
never leaves a stale lock; the file only tells the next process who holds it (a line of
PID and command line per holder). Cloud workers on one PostgreSQL database share their
data folder (the log key) by design, so they take the lock shared: any number of them
together, but never beside an exclusive holder.

Host-side, CPython on POSIX only. It sits in device/ because the device CLI, the gateway
and the cloud all use it (DESIGN.md: device/ is upstream of both); it is not firmware —
device/flashing.py's FIRMWARE leaves it off the board and no firmware module imports it.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
import time
from pathlib import Path

LOCK_FILE = "pharmasync.lock"


class FolderBusy(OSError):
    """Another process holds the folder's lock; str() names it and says what to do."""

    def __init__(self, folder: Path, holders: list[str]) -> None:
        who = "; ".join(holders) if holders else "a process that is still starting"
        super().__init__(
            f"{folder} is in use by another pharmasync process ({who}): stop it first, "
            "or give this one a folder of its own"
        )
        self.folder = folder
        self.holders = holders


class DataLock:
    """A held lock on a data folder; release() (or leaving a `with`) lets it go."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the flock
            self._fd = None

    def __enter__(self) -> DataLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def acquire(folder: Path, *, shared: bool = False) -> DataLock:
    """Lock `folder` (created if missing) for this process: exclusively, or shared with
    other shared holders. Raises FolderBusy naming the holders if it is taken, OSError if
    the folder cannot be made or written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if shared and _try(fd, fcntl.LOCK_EX):
            # Alone: start the holder list afresh, then let other shared holders in. (A
            # process slipping in between the two calls makes the second one fail: busy.)
            os.ftruncate(fd, 0)
            if not _try(fd, fcntl.LOCK_SH):
                raise FolderBusy(folder, _holders(path))
        elif not _try(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX):
            raise FolderBusy(folder, _holders(path))
        if not shared:
            os.ftruncate(fd, 0)
        line = f"{os.getpid()}\t{shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}\n"
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line.encode())
    except BaseException:
        os.close(fd)
        raise
    return DataLock(folder, fd)


def _try(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holders(path: Path) -> list[str]:
    """The live holders listed in the lock file, as "PID n: command" (the file may still
    be empty for a moment after a holder took the lock: wait a little for its line)."""
    for _ in range(10):
        live = []
        for line in path.read_text(errors="replace").splitlines():
            pid, _, command = line.partition("\t")
            if pid.isdigit() and _alive(int(pid)):
                live.append(f"PID {pid}: {command}" if command else f"PID {pid}")
        if live:
            return live
        time.sleep(0.05)
    return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
