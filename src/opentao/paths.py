"""Where opentao keeps converted models and downloaded data: ``$OPENTAO_CACHE`` or ``~/.cache/opentao``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("OPENTAO_CACHE") or Path.home() / ".cache" / "opentao")
    root.mkdir(parents=True, exist_ok=True)
    return root
