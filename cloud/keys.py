"""Key files of the cloud's signers (the log key, a witness's key): created once, whole or
not at all, kept secret (mode 0600), read at every start."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.note import Signer


def load_or_create_signer(path: Path, name: str, kind: type[Signer] = Signer) -> Signer:
    """Return the signer stored in `path` (a signed-note private key string), creating it
    with key name `name` if the file does not exist yet. Raises KeyFormatError if the file
    holds no valid key of `kind`, OSError."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new_key(path, kind.generate(name))
    return kind.parse(path.read_text().strip())


def write_new_key(path: Path, signer: Signer) -> None:
    """Write `signer`'s key to `path` whole or not at all: a 0600 temp file, fsynced, then
    hard-linked into place (unlike rename, link never replaces a key made meanwhile; if
    another process made one first, that one stays)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(signer.to_skey() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Flush directory `path`, making the names just created or renamed in it durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
