"""``benchmarks/round_vs_trl.py --tiny`` end to end: both sides run (ours on the hf engine), their JSON has both
wall times and equal optimizer-update counts, and our count is grpo's own formula."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_tiny_round_vs_trl_records_both_walls_and_equal_updates(tmp_path):
    out = tmp_path / "round_vs_trl.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "round_vs_trl.py"), "--tiny", "--engine", "hf",
                           "--work", str(tmp_path / "work"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["ours"]["wall_s"] > 0 and res["trl"]["wall_s"] > 0
    assert res["ratio"] == pytest.approx(res["ours"]["wall_s"] / res["trl"]["wall_s"], rel=0.01)
    # 4 prompts x K=2 completions, batches of 2: at most 4 updates, the same on both sides
    assert res["N"] == 4 and res["K"] == 2 and res["max_new_tokens"] == 8
    assert 1 <= res["steps"]["ours"] <= 4
    assert res["steps"]["ours"] == res["steps"]["trl"] == res["ours"]["steps_expected"]
    assert res["steps"]["equal"] is True
    assert res["ours"]["engine"] == "hf" and res["ours"]["candidates"] == 8
    assert set(res["ours"]["stages_s"]) == {"generate", "score", "train"}
    assert res["trl"]["generation_batch_size"] == 8 and res["trl"]["reward_calls"] >= 1
    assert res["machine"]["trl"] and res["machine"]["torch"] and res["machine"]["dtype"].startswith("torch.")
