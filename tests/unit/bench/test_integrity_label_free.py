"""``benchmarks/integrity_label_free.py`` without a model: which general scorers a task gets (and why not), the check
that weight-0 scorers leave ``combined`` the shipped reward, and the markdown of skipped scorers and failed tasks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from opentao.config import load_config
from opentao.records import Score
from opentao.store import RunStore
from tests.helpers.sql import make_db

REPO = Path(__file__).resolve().parents[3]
SHIPPED = [{"type": "regex", "pattern": "SELECT", "name": "has_select"},
           {"type": "length_penalty", "relative": 1.0, "weight": 2}]


def _bench():
    spec = importlib.util.spec_from_file_location("integrity_label_free",
                                                  REPO / "benchmarks" / "integrity_label_free.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_added_specs_have_weight_zero_and_record_why_a_scorer_cannot_apply(tmp_path):
    bench = _bench()
    db = make_db(tmp_path / "x.sqlite")
    specs, skipped = bench.added_specs("sql", load_config(None, None, db=str(db), model="some/model"))
    assert [(s["type"], s["weight"]) for s in specs] == [("soft_vote", 0), ("self_certainty", 0), ("entropy", 0)]
    assert specs[0]["mode"] == "sql_result" and skipped == {}
    # SQL's vote needs the database: without one it is skipped with the registry's own reason, not a crash
    specs, skipped = bench.added_specs("sql", load_config(None, None, model="some/model"))
    assert [s["type"] for s in specs] == ["self_certainty", "entropy"]
    assert "needs a database" in skipped["soft_vote"]
    _, skipped = bench.added_specs("sql", load_config(None, None, db=str(tmp_path / "empty"), model="some/model"))
    assert "database not found" in skipped["soft_vote"]
    (tmp_path / "empty").write_bytes(b"")
    assert "not a SQLite database" in bench.added_specs(
        "sql", load_config(None, None, db=str(tmp_path / "empty"), model="some/model"))[1]["soft_vote"]
    specs, skipped = bench.added_specs("sql-flights", load_config(None, None, model="some/model"))
    assert "no answer to vote on" in skipped["soft_vote"] and len(specs) == 2
    assert bench.added_specs("docqa", load_config(None, None))[0][0]["mode"] == "answer"


def _store(tmp_path, rows):
    store = RunStore(tmp_path / "run")
    store.write_part("scores", "r1-p0", [Score(p, c, s, v, 1) for p, c, s, v in rows], Score.SCHEMA)
    return store


def test_combined_is_shipped_recomputes_from_the_shipped_scorers_alone(tmp_path):
    bench = _bench()
    cfg = load_config(None, None, **{"score.scorers": SHIPPED})
    # has_select weight 1, length_penalty weight 2: (1*a + 2*b) / 3; soft_vote (weight 0) must not matter
    good = [("p", "p#0", "has_select", 1.0), ("p", "p#0", "length_penalty", 0.4), ("p", "p#0", "soft_vote", 0.9),
            ("p", "p#0", "combined", 0.6),
            ("p", "p#1", "has_select", None), ("p", "p#1", "length_penalty", 0.3), ("p", "p#1", "soft_vote", 0.1),
            ("p", "p#1", "combined", 0.3)]
    assert bench.combined_is_shipped(_store(tmp_path / "a", good), cfg, SHIPPED) is True
    # a combined that counted soft_vote at weight 1: (1 + 0.8 + 0.9) / 4
    bad = [r if r[1:3] != ("p#0", "combined") else ("p", "p#0", "combined", 0.675) for r in good]
    assert bench.combined_is_shipped(_store(tmp_path / "b", bad), cfg, SHIPPED) is False
    abstained = [r if r[1:3] != ("p#1", "combined") else ("p", "p#1", "combined", None) for r in good]
    assert bench.combined_is_shipped(_store(tmp_path / "c", abstained), cfg, SHIPPED) is False


def test_render_shows_skipped_scorers_and_failed_tasks():
    bench = _bench()
    row = {k: None for k in bench.METRICS} | {"mixed_groups": 0, "verdict": "no signal", "role": "scorer",
                                               "added": False, "degenerate_paid": 3}
    task = {"prompts": 2, "candidates": 4, "engine": "hf", "candidate_accuracy": 0.5, "majority_label_accuracy": None,
            "degenerate_check": False, "degenerate_candidates": 0, "degenerate_correct": 0,
            "combined_is_shipped": True, "seconds": {"generate": 1.0, "score": 2.0, "integrity": 0.1},
            "generate": {"strategies": ["plain"], "temperatures": [0.7], "max_new_tokens": 8, "extract": "none"},
            "scorers": {"mine": row, "soft_vote": {"added": True, "skipped": "no answer to vote on"}}}
    res = {"command": "python b.py", "date": "today", "machine": {"cpu": "cpu", "cpu_count": 2},
           "settings": {"model": "m", "prompts": 2, "k": 2, "seed": 0, "engine": "hf", "tiny": False},
           "tasks": {"docqa": task, "instruct": {"error": "cannot download"}}}
    text = bench.render(res)
    assert "| soft_vote (added) | — |" in text and "- `soft_vote` not run: no answer to vote on" in text
    assert "| mine | scorer |" in text and "| n/a | no signal |" in text  # no degenerate check: not "3"
    assert "## instruct\n\nNot run: cannot download" in text
    assert "tiny" not in text
