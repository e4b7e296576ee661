#!/usr/bin/env python
"""Reproduce the shape of TAO's Table 3 and Figure 3 (Databricks 2025) on CPU, on three tasks.

The arms are run configs over the real stages (:mod:`opentao.bench.arms`): each task's shipped config plus the
diffs in ``tao_table.yaml`` (sizes per mode) and ``tried.yaml`` (variants tried for missed targets). The results
and the rendered README are in this folder. Usage::

    PYTHONPATH=src python benchmarks/tao_table.py --quick      # ≤ 20 min spot check
    PYTHONPATH=src python benchmarks/tao_table.py              # full run (resumable: run it repeatedly)
    PYTHONPATH=src python benchmarks/tao_table.py --tried      # the variants of tried.yaml
    PYTHONPATH=src python benchmarks/tao_table.py --diagnose   # answer diagnostics from the cached eval answers
    PYTHONPATH=src python benchmarks/tao_table.py --render     # README + plots from the saved JSON only
"""

import sys
from pathlib import Path

from opentao.bench.table import main
from opentao.errors import TaoError

if __name__ == "__main__":
    try:
        raise SystemExit(main(here=Path(__file__).resolve().parent))
    except TaoError as exc:  # bad settings (tao_table.yaml, tried.yaml): one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
