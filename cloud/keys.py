"""Key files of the cloud's signers: created once, kept secret, read at every start."""

from __future__ import annotations

import os
from pathlib import Path

from cloud.note import Signer


def load_or_create_signer(path: Path, name: str, kind: type[Signer] = Signer) -> Signer:
    """Return the signer stored in `path` (a signed-note private key string), creating it
    with key name `name` (mode 0600, written atomically) if the file does not exist yet.
    Raises KeyFormatError if the file holds no valid key of `kind`."""
    if path.exists():
        return kind.parse(path.read_text().strip())
    signer = kind.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.to_skey() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return signer
