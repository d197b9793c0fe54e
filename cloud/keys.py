"""Key files of the cloud's signers (the log key, a witness's key): created once, whole or
not at all, kept secret (mode 0600), read at every start."""

from __future__ import annotations

import contextlib
from pathlib import Path

from device.keyfile import create_secret_text
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
    """Write `signer`'s key to `path` whole or not at all, mode 0600 (device/keyfile.py);
    if another process made one first, that one stays. Raises OSError."""
    with contextlib.suppress(FileExistsError):
        create_secret_text(path, signer.to_skey())
