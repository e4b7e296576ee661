"""The numbers behind the report's plots, checked against values computed by hand (tests/report_fixtures.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from opentao.report import data as D
from tests.helpers.report_fixtures import make_run


@pytest.fixture()
def run(tmp_path):
    return D.load_run(make_run(tmp_path / "run"))


def test_score_distributions(run):
    d = D.score_distributions(run.tables["scores"])
    assert list(d) == ["majority_vote", "sql_exec", "combined"]  # combined last
    assert d["sql_exec"]["counts"] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 4]
    assert d["sql_exec"]["edges"][0] == 0.0 and d["sql_exec"]["edges"][-1] == pytest.approx(1.0)
    assert d["majority_vote"]["n"] == 5 and d["majority_vote"]["abstained"] == 1
    assert d["majority_vote"]["mean"] == pytest.approx(3 / 5)
    assert d["combined"]["counts"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 3]
    assert d["combined"]["mean"] == pytest.approx(3.5 / 6)
    const = D.score_distributions([{"scorer": "s", "score": 2.0}] * 3)["s"]
    assert const["counts"] == [3] and const["edges"] == [2.0, 2.0]


def test_scorer_agreement(run):
    agr = D.scorer_agreement(run.tables["scores"])
    assert agr["scorers"] == ["majority_vote", "sql_exec", "combined"]
    # over the 5 candidates both scored: sql [1,1,1,1,0], vote [1,0,1,1,0] → r = 0.6 / sqrt(0.8 * 1.2)
    assert agr["matrix"][0][1] == pytest.approx(0.6 / math.sqrt(0.96))
    assert agr["matrix"][1][0] == agr["matrix"][0][1]
    assert agr["pairs"][0][1] == 5 and agr["pairs"][1][2] == 6
    assert agr["matrix"][0][0] == pytest.approx(1.0)
    assert D.pearson([1.0, 1.0], [0.0, 1.0]) is None and D.pearson([1.0], [2.0]) is None


def test_heldout_rounds_and_k(run):
    pts = D.heldout_metrics(run.summaries)
    assert [(p["round"], p["label"], p["accuracy"], p["lo"], p["hi"]) for p in pts] == [
        (0, "base", 0.25, 0.05, 0.7), (1, "round-1", 0.75, 0.3, 0.95)]
    assert D.reward_by_round(run.tables["scores"]) == [
        {"round": 1, "mean_reward": pytest.approx(3.5 / 6), "groups": 2, "flat_share": 0.0}]
    curve = D.best_of_k_curve(run.tables["scores"])
    assert [(c["k"], c["best_reward"], c["signal_share"]) for c in curve] == [(1, 1.0, 0.0), (2, 1.0, 0.5),
                                                                              (3, 1.0, 1.0)]


def test_training_curves_from_summary_and_checkpoint(run):
    curves = D.training_curves(run)
    assert curves[1]["loss"] == [(1, 2.0), (2, 1.5)]
    assert curves[1]["grad_norm"] == [(1, 3.0), (2, 2.0)]
    assert "train_loss" not in curves[1] and "epoch" not in curves[1]
    run.summaries["train-r1"].pop("log_history")
    assert D.training_curves(run) == {}
    run.checkpoint_logs[1] = [{"step": 3, "loss": 0.5}]
    assert D.training_curves(run) == {1: {"loss": [(3, 0.5)]}}


def test_answer_stats_and_collapse(run):
    s = D.answer_stats(["a", "a", "b", ""])
    assert s["entropy_bits"] == pytest.approx(1.5) and s["top_share"] == 0.5 and s["distinct"] == 3
    assert s["classes"] == [("a", 0.5), ("(none)", 0.25), ("b", 0.25)]
    assert D.answer_stats(["a", "a", "b", ""], top=1)["classes"] == [("a", 0.5), ("(other)", 0.5)]
    rows = {(r["round"], r["source"]): r for r in D.collapse_telemetry(run.tables["candidates"],
                                                                      run.tables["eval_results"])}
    assert rows[(1, "candidates")]["entropy_bits"] == pytest.approx(0.5 + 0.5 * math.log2(6))
    assert rows[(0, "eval base")]["entropy_bits"] == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))
    assert rows[(0, "eval base")]["top_share"] == 0.75
    assert rows[(1, "eval round-1")]["entropy_bits"] == 0.0 and rows[(1, "eval round-1")]["top_share"] == 1.0


def test_best_and_worst(run):
    groups = D.best_and_worst(run.tables["candidates"], run.tables["scores"], n=1)
    assert [g["prompt_id"] for g in groups] == ["p1", "p2"]  # equal spread 1.0: by prompt id
    assert [c["candidate_id"] for c in groups[0]["best"]] == ["p1#0"]
    assert [c["candidate_id"] for c in groups[0]["worst"]] == ["p1#2"]
    assert [c["candidate_id"] for c in groups[1]["best"]] == ["p2#0"]  # tie with p2#1: the lower slot first
    full = D.best_and_worst(run.tables["candidates"], run.tables["scores"])  # K=3 < 5: nobody shown twice
    assert [c["candidate_id"] for c in full[0]["best"]] == ["p1#0", "p1#1", "p1#2"] and full[0]["worst"] == []


def test_cost(run):
    c = D.cost(run)
    assert c["candidate_tokens"] == 80 and c["eval_tokens"] == 12 and c["total_wall_s"] == 40.0
    assert [(s["stage"], s["wall_s"]) for s in c["stages"]] == [
        ("eval base", 3.0), ("generate", 16.0), ("score", 2.0), ("train", 9.0), ("eval", 4.0)]
    assert c["rounds"] == [{"round": 1, "tokens": 80, "generate_s": 16.0, "tokens_per_s": 5.0}]


def test_benchmark_readme_links_only_existing_reports(tmp_path):
    from opentao.bench.report import report_links

    assert report_links(tmp_path / "reports", "full", base=tmp_path) == []
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "full-sql.html").write_text("<html></html>")
    (lines,) = [ln for ln in report_links(Path("reports"), "full", base=tmp_path) if ln]
    assert "(reports/full-sql.html)" in lines and "docqa" not in lines
