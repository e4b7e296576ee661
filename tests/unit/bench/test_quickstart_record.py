"""``benchmarks/quickstart.py``'s record of a finished run (``collect``, and ``--recorded`` for a run someone else
timed, such as a fresh clone's ``make demo``): stage times, the paired change and table sizes come from the run's
own summary, per-answer rows stay out, and a directory that is not a finished run is one ``error:`` line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "quickstart.py"


def _bench():
    spec = importlib.util.spec_from_file_location("quickstart_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eval(correct: list[bool], wall: float) -> dict:
    ids = [f"q{i}" for i in range(len(correct))]
    return {"accuracy": sum(correct) / len(correct), "correct": sum(correct), "n": len(correct), "engine": "hf",
            "wall_s": wall, "per_example": {"ids": ids, "correct": correct}}


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "summary").mkdir(parents=True)
    base = [False] * 18 + [True, True]
    tuned = [True] * 6 + [False] * 12 + [True, False]  # 6 gained, 1 lost
    summary = {"base": _eval(base, 7.0),
               "rounds": [{"round": 1, "generate": {"wall_s": 11.0, "engine": "hf", "candidates": 8},
                           "score": {"wall_s": 1.5}, "train": {"wall_s": 5.0, "examples": 3},
                           "eval": _eval(tuned, 6.0)}],
               "tables": {"candidates": 8, "prompts": 2}, "wall_s": 31.0}
    (run / "summary" / "run.json").write_text(json.dumps(summary))
    return run


def test_collect_reads_the_runs_own_summary(tmp_path):
    res = _bench().collect(_run_dir(tmp_path), wall_s=42.04, command="make demo (recorded)", stdout="x" * 5000)
    assert res["wall_s"] == 42.0
    assert res["stage_wall_s"] == {"eval_base": 7.0, "generate": 11.0, "score": 1.5, "train": 5.0, "eval_tuned": 6.0}
    assert res["vs_base"]["gained"] == 6 and res["vs_base"]["lost"] == 1
    assert res["vs_base"]["delta"] == pytest.approx(5 / 20)
    assert "per_example" not in res["base"] and "per_example" not in res["tuned"]
    assert res["tables"] == {"candidates": 8, "prompts": 2} and len(res["stdout_tail"]) == 3000
    assert res["machine"]["load_avg_1m_before"] is None  # not measured by whoever made the run


def test_recorded_writes_only_its_out_file(tmp_path):
    run, out = _run_dir(tmp_path), tmp_path / "rec.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--recorded", str(run), "--wall-s", "42", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["command"] == "make demo (recorded)"
    assert "+25.0 [" in proc.stdout and "wall 42 s" in proc.stdout


@pytest.mark.parametrize("args", [["--wall-s", "1"], ["--out", "x.json"]])
def test_recorded_needs_its_wall_time_and_an_out_file(tmp_path, args):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--recorded", str(_run_dir(tmp_path)), *args],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--recorded needs --wall-s and --out" in proc.stderr


def test_a_directory_that_is_not_a_finished_run_is_one_error_line(tmp_path):
    out = tmp_path / "rec.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--recorded", str(tmp_path / "nope"), "--wall-s", "1",
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert not out.exists()
