"""The flywheel's state, ``flywheel.json``: the cut-off ``seq`` of the inference table and the round counter.

Written after a round's decision, so a round that crashes is resumed by re-running the same command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentao.store import atomic_write_text

STATE_FILE = "flywheel.json"


def read_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"last_seq": -1, "rounds": 0}


def write_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write_text(root / STATE_FILE, json.dumps(state, indent=2) + "\n")
