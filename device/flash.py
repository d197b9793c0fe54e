"""Crash-safe file writes for the box's small state files (littlefs, FAT or POSIX)."""

import os


def fsync(f):
    """Push a file's data to the medium: fsync on CPython (a Pi's SD card); MicroPython's
    littlefs commits on close(), and has no fsync."""
    try:
        f.flush()
        os.fsync(f.fileno())
    except (AttributeError, OSError):
        pass


def write_atomic(path, text):
    """Replace the file at `path` with `text` (str, or bytes written as they are) so that a
    crash leaves the old or the new content, never a mix (write a temporary file, then
    rename it over the old one)."""
    tmp = path + ".tmp"
    with open(tmp, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
        fsync(f)
    os.rename(tmp, path)
