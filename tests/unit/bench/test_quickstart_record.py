"""``benchmarks/quickstart.py``'s record of a finished run (``collect``, and ``--recorded`` for a run someone else
timed, such as a fresh clone's ``make demo``): stage times, the paired change and table sizes come from the run's
own summary, and a directory that is not a finished run is one ``error:`` line. ``--pool`` pools such records
(seeds) into one change whose CI covers the seeds and the questions."""

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
    assert res["tuned"]["per_example"]["correct"].count(True) == 7  # kept for --pool
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


def _record(tmp_path: Path, name: str, tuned: list[bool]) -> Path:
    run = _run_dir(tmp_path / name)
    summary = json.loads((run / "summary" / "run.json").read_text())
    summary["rounds"][0]["eval"] = _eval(tuned, 6.0)
    (run / "summary" / "run.json").write_text(json.dumps(summary))
    out = tmp_path / f"{name}.json"
    out.write_text(json.dumps(_bench().collect(run, wall_s=1.0, command=name)))
    return out


def test_pool_is_the_mean_of_the_runs_paired_changes(tmp_path):
    base = [False] * 18 + [True, True]
    a = _record(tmp_path, "s0", [True] * 6 + [False] * 12 + [True, False])   # +5/20
    b = _record(tmp_path, "s1", [False] * 19 + [True])                        # -1/20
    out = tmp_path / "pooled.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pool", str(a), str(b), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["pooled"]["per_seed"] == pytest.approx([5 / 20, -1 / 20]) and res["pooled"]["seeds"] == 2
    assert res["pooled"]["delta"] == pytest.approx(2 / 20)
    lo, hi = res["pooled"]["ci95"]
    assert lo <= 2 / 20 <= hi and lo < 0  # the seed that lost keeps the CI wide
    assert [r["command"] for r in res["runs"]] == ["s0", "s1"] and sum(base) == res["runs"][0]["base"]
    assert "2 runs, per-run delta +25.0, -5.0; pooled +10.0" in proc.stdout


def test_pool_rejects_a_record_without_per_example_results(tmp_path):
    a = _record(tmp_path, "s0", [True] * 20)
    old = json.loads(a.read_text())
    del old["tuned"]["per_example"]
    b = tmp_path / "old.json"
    b.write_text(json.dumps(old))
    out = tmp_path / "pooled.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pool", str(a), str(b), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {b}") and proc.stderr.count("\n") == 1
    assert not out.exists()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pool", str(a)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--pool needs --out" in proc.stderr
