"""The ``tao`` command as a subprocess (what a user runs)."""

from __future__ import annotations

import subprocess
import sys

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def tao(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TAO, *args], capture_output=True, text=True, timeout=300)
