"""``benchmarks/collapse_telemetry.py`` picks one seed's run directories (``<arm>/`` at seed 0, ``<arm>-s<seed>/``
otherwise), never another seed's, and writes that seed's own files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    spec = importlib.util.spec_from_file_location("collapse_bench", REPO / "benchmarks" / "collapse_telemetry.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(mod, "HERE", tmp_path)
    limits = {"max_top_share": 0.9, "min_entropy": 0.5}
    monkeypatch.setattr(mod, "run_dir_rows", lambda d, task: {"run_dir": d.name, "collapse_limits": limits,
                                                               "samples": [], "answers": []})
    return mod


def test_each_seed_reads_its_own_run_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _script(monkeypatch, tmp_path)
    root = tmp_path / "runs" / "docqa"
    for name in ("docqa-tao", "docqa-tao-k2", "docqa-tao-k16", "docqa-tao-s1", "docqa-tao-k2-s1", "docqa-tao-k16-s1",
                 "docqa-tao-k4-s2"):
        (root / name / "tables" / "candidates").mkdir(parents=True)
        (root / name / "config.yaml").write_text("{}")
    assert mod.main(["--runs", str(tmp_path / "runs"), "--seed", "1"]) == 0
    out = json.loads((tmp_path / "results" / "collapse-docqa-s1.json").read_text())
    assert out["seed"] == 1 and [a["run_dir"] for a in out["arms"]] == ["docqa-tao-s1", "docqa-tao-k2-s1",
                                                                         "docqa-tao-k16-s1"]
    assert "seed 1)" in (tmp_path / "results" / "collapse-docqa-s1.md").read_text().splitlines()[0]
    assert mod.main(["--runs", str(tmp_path / "runs")]) == 0  # seed 0: the unsuffixed directories only
    out = json.loads((tmp_path / "results" / "collapse-docqa.json").read_text())
    assert [a["run_dir"] for a in out["arms"]] == ["docqa-tao", "docqa-tao-k2", "docqa-tao-k16"]


def test_a_seed_without_run_directories_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    mod = _script(monkeypatch, tmp_path)
    (tmp_path / "runs" / "docqa" / "docqa-tao-s1").mkdir(parents=True)  # no tables: not a finished run
    assert mod.main(["--runs", str(tmp_path / "runs"), "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no docqa-tao-s2 run directory") and err.count("\n") == 1
    assert not list((tmp_path / "results").iterdir())
