"""Renames that survive a power loss: ``os.replace`` is atomic, but only an fsync of the directory makes it
durable. Used for the inference log's parts and segments, the model pointer and the keys file (a revoked key
must not come back after a crash)."""

from __future__ import annotations

import os
from pathlib import Path

from opentao.store import atomic_write_text


def fsync_dir(path: str | Path) -> None:
    """Make a rename, create or unlink in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_text`` (tmp + fsync + rename), then an fsync of the directory."""
    path = Path(path)
    atomic_write_text(path, text)
    fsync_dir(path.parent)
