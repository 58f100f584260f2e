"""Durable file writes, shared by every layer that must never leave a half-written file behind."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "fsync_dir", "umask_mode"]


def _current_umask() -> int:
    # Linux reports it without changing it; os.umask() can only read by setting, which would briefly widen
    # the permissions of files other threads (the Space's workers) create at that moment.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the fallback's brief window is private, not public
    os.umask(mask)
    return mask


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: the permissions ``open()`` would give a new file."""
    return mode & ~_current_umask()


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entry table, so a rename into it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write ``path`` through a hidden temp file in the same folder, fsync it and rename it into place.

    Readers see the old file or the whole new one, never a part; a crash leaves at most a ``.tmp`` file.
    The file gets the permissions any new file would (``0o666`` less the umask), not ``mkstemp``'s private
    ``0o600``, so colleagues on a shared server can read results when the umask lets them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` for UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
