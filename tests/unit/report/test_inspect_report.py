"""`tao inspect` (read-only SQL, one prompt side by side) and `tao report` (self-contained, escaped HTML)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from opentao.errors import TaoError
from opentao.report.page import render_report
from opentao.runview import prompt_view, run_sql
from tests.helpers.report_fixtures import EVIL, make_run
from tests.helpers.cli import TAO, tao


@pytest.fixture()
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


def _one_error_line(res, needle: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr


def test_sql_over_views(run_dir):
    cols, rows = run_sql(run_dir, "select scorer, count(*) n from scores group by scorer order by scorer")
    assert cols == ["scorer", "n"] and rows == [("combined", 6), ("majority_vote", 6), ("sql_exec", 6)]
    _, rows = run_sql(run_dir, "select count(*) from candidates c join train_examples t on c.candidate_id = t.chosen_id")
    assert rows == [(2,)]
    with pytest.raises(TaoError, match="syntax error"):
        run_sql(run_dir, "selec 1")
    with pytest.raises(TaoError, match="nope.*tables in .*: prompts, candidates, scores"):
        run_sql(run_dir, "select * from nope")


def test_inspect_is_read_only(run_dir, tmp_path):
    target = tmp_path / "leak.csv"
    with pytest.raises(TaoError, match="SQL failed"):
        run_sql(run_dir, f"copy candidates to '{target}'")
    with pytest.raises(TaoError, match="SQL failed"):
        run_sql(run_dir, "select * from read_csv('/etc/passwd')")
    with pytest.raises(TaoError, match="SQL failed"):
        run_sql(run_dir, "set enable_external_access = true")
    assert not target.exists()


def test_prompt_view(run_dir):
    v = prompt_view(run_dir, "p2")
    assert v.round == 1 and v.scorers == ["majority_vote", "sql_exec"]
    assert [(c.candidate_id, c.scores["sql_exec"], c.combined, c.trained) for c in v.candidates] == [
        ("p2#0", 1.0, 1.0, "chosen"), ("p2#1", 1.0, 1.0, ""), ("p2#2", 0.0, 0.0, "rejected")]
    assert prompt_view(run_dir, "p1").candidates[2].scores["majority_vote"] is None  # an abstention
    with pytest.raises(TaoError, match="did you mean p1"):
        prompt_view(run_dir, "p1x")
    with pytest.raises(TaoError, match="no candidates in round 3"):
        prompt_view(run_dir, "p1", 3)


def test_inspect_cli(run_dir):
    res = subprocess.run([*TAO, "inspect", str(run_dir), "--prompt", "p1"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    assert "[bold red]not markup[/]" in res.stdout  # model text printed literally, never as rich markup
    assert "chosen" in res.stdout and "question p1?" in res.stdout
    _one_error_line(tao("inspect", str(run_dir), "select * from nope"), "nope")
    _one_error_line(tao("inspect", str(run_dir), "--prompt", "zzz"), "no prompt 'zzz'")


def test_report_sections_and_escaping(run_dir):
    page = render_report([run_dir])
    for sid in ("scores", "agreement", "heldout", "quality", "training", "collapse", "candidates", "integrity",
                "cost"):
        assert f"<section id='{sid}'>" in page
    for plot in ("score-distributions", "scorer-agreement", "heldout", "quality-vs-k", "training-r1", "collapse",
                 "wall-time"):
        assert re.search(rf"data-plot='{plot}'><svg", page), plot
    assert "<script" not in page.lower()  # the candidate's tag is escaped, not markup
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", page)  # nothing to fetch
    assert "https://" not in page and "http://" not in re.sub(r"xmlns(:\w+)?=\"http://www.w3.org/[^\"]*\"", "", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_report_is_deterministic_and_compares_runs(run_dir, tmp_path):
    other = make_run(tmp_path / "other", evil="SELECT 2")
    assert render_report([run_dir]) == render_report([run_dir])
    page = render_report([run_dir, other])
    assert page.count("<div class='cols' style='--n:2'>") == 9  # every section: one column per run
    assert "TAO runs compared: run, other" in page


def test_report_cli(run_dir, tmp_path):
    out = tmp_path / "r.html"
    res = tao("report", str(run_dir), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    _one_error_line(tao("report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.html")), "no run directory")
    assert not (tmp_path / "x.html").exists()
