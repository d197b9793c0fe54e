"""Secret key files, created whole or not at all (host side: CPython only, never flashed).

Every secret key PharmaSync writes to disk goes through `create_secret_file`: a box's key
(`device keygen`, `device provision`, `device simulate`), a gateway's, the cloud's owner,
log and witness keys. The file appears under its name only once its whole content is on
the medium, with mode 0600, and never replaces a file that exists:

    1. write a temporary file beside it (O_CREAT | O_EXCL, mode 0600) and fsync it
    2. hard-link it to the final name: link(2) fails with EEXIST instead of replacing
       (rename(2) would replace), so a key made meanwhile by another process stays
    3. remove the temporary name and fsync the directory, so the new name is durable

A crash before step 2 leaves no file under the name (at most a `.NAME.PID.tmp` beside it,
which is never read); a crash after it leaves the whole key.
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET_MODE = 0o600


def create_secret_file(path: Path, data: bytes) -> None:
    """Create the file `path` holding exactly `data`, mode 0600, whole or not at all, and
    make it durable (file and directory fsynced). Requires the directory to exist.

    Raises FileExistsError if `path` exists (it is left as it was), OSError otherwise.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def create_secret_text(path: Path, text: str) -> None:
    """create_secret_file for a key written as one line of text (hex, or a signed-note key
    string): `text` and a newline, UTF-8. Raises FileExistsError, OSError."""
    create_secret_file(path, (text + "\n").encode())


def fsync_dir(path: Path) -> None:
    """Flush directory `path`, making the names just created or renamed in it durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
