"""Reward integrity against gold: metrics on hand-made groups, gold joining, the CLI, and train's refusal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Score
from opentao.score.integrity import (
    GradedCandidate,
    auc,
    check_integrity,
    load_gold,
    majority_label_accuracy,
    run_integrity,
    scorer_integrity,
)
from opentao.store import RunStore
from tests.helpers.files import write_jsonl
from tests.helpers.runs import hand_made_run as _hand_made_run

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def G(correct: bool, key: str | None, **scores) -> GradedCandidate:
    return GradedCandidate(correct, key, scores)


def test_auc_known_values():
    assert auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5  # ties count half
    assert auc([3, 1, 2, 2], [True, False, True, False]) == pytest.approx(0.875)  # pairs: 1, 1, 1, .5 → 3.5/4
    assert auc([1, 2], [True, True]) is None


def test_metrics_on_hand_made_groups():
    groups = [
        # g1: s picks the correct one; majority (a, a vs b) is correct
        [G(True, "a", s=0.9, flat=1), G(True, "a", s=0.1, flat=1), G(False, "b", s=0.5, flat=1)],
        # g2: s picks the wrong one; majority (c, c) is wrong
        [G(False, "c", s=0.7, flat=1), G(False, "c", s=0.6, flat=1), G(True, "d", s=0.2, flat=1)],
        # g3: all wrong; s has zero variance here
        [G(False, "e", s=0.3, flat=1), G(False, "f", s=0.3, flat=1), G(False, None, s=0.3, flat=1)],
        # g4: s abstains on two; the one scored is correct
        [G(True, "g", s=0.4, flat=1), G(False, "h", s=None, flat=1), G(False, "h", s=None, flat=1)],
    ]
    m = scorer_integrity(groups, "s")
    assert m["scored_groups"] == 4 and m["candidates"] == 12
    assert m["best_of_k"] == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert m["mean_acc"] == pytest.approx((2 / 3 + 1 / 3 + 0 + 1) / 4)
    assert m["oracle"] == pytest.approx(3 / 4)
    assert m["zero_var"] == pytest.approx(2 / 4)  # g3 all equal; g4 a single scored candidate
    assert m["abstain_share"] == pytest.approx(2 / 12)
    assert m["mixed_groups"] == 2 and m["auc_within"] == pytest.approx((0.5 + 0.0) / 2)
    assert majority_label_accuracy(groups) == pytest.approx((1 + 0 + 0 + 0) / 4)  # g3 tie e/f: both wrong; g4 h wins
    flat = scorer_integrity(groups, "flat")
    assert flat["best_of_k"] == pytest.approx(flat["mean_acc"])  # a constant scorer picks at random
    assert flat["zero_var"] == 1.0 and flat["verdict"] == "no signal"
    assert flat["vote_acc"] == pytest.approx(majority_label_accuracy(groups))  # constant weights = TTRL's vote


def test_within_group_auc_exact():
    g1 = [G(True, "a", s=0.9), G(True, "a", s=0.1), G(False, "b", s=0.5)]  # pairs (.9>.5) (.1<.5) → 0.5
    g2 = [G(False, "c", s=0.7), G(True, "d", s=0.2)]  # 0.0
    assert scorer_integrity([g1, g2], "s")["auc_within"] == pytest.approx(0.25)


def test_verdicts():
    good = [[G(True, "a", s=1), G(False, "b", s=0)], [G(False, "a", s=0), G(True, "c", s=1)]]
    bad = [[G(True, "a", s=0), G(False, "b", s=1)], [G(False, "a", s=1), G(True, "c", s=0)]]
    no_mixed = [[G(False, "a", s=1), G(False, "b", s=0)]]
    assert scorer_integrity(good, "s", min_mixed=2)["verdict"] == "ok"
    v = scorer_integrity(bad, "s", min_mixed=2)["verdict"]
    assert v.startswith("no better than random") and "AUC 0.00" in v and "best-of-K" in v
    assert scorer_integrity(no_mixed, "s")["verdict"].startswith("undetermined (0 group(s)")
    assert scorer_integrity(bad, "s")["verdict"].startswith("undetermined (2 group(s)")  # too little evidence


def _prompt_rows(n: int) -> list[dict]:
    return [{"id": f"q{i}", "prompt": f"What is {i} + {i}?"} for i in range(n)]


def test_load_gold_ids_like_load_prompts(tmp_path):
    from opentao.data import load_prompts

    rows = [{"prompt": "no id here", "answer": "1"}, {"id": "q1", "prompt": "x", "answer": "2"}]
    path = write_jsonl(tmp_path / "gold.jsonl", rows)
    ids = [p.prompt_id for p in load_prompts(path)]
    assert set(load_gold(str(path), ids)) == set(ids)
    with pytest.raises(TaoError, match="none of its 2 ids match the run's 1 prompts"):
        load_gold(str(path), ["other"])
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "q1", "prompt": "x"}])
    with pytest.raises(TaoError, match="needs a 'sql' or an 'answer'"):
        load_gold(str(bad), ["q1"])


def test_run_integrity_stores_table_and_summary(tmp_path):
    run = tmp_path / "run"
    _hand_made_run(run)
    gold = write_jsonl(tmp_path / "gold.jsonl",
                       [{"id": f"q{i}", "prompt": "x", "answer": str(2 * i)} for i in range(6)])
    summary = run_integrity(RunStore(run), str(gold), round_=1, db=None)
    assert summary["scorers"]["right"]["verdict"] == "ok" and summary["scorers"]["right"]["best_of_k"] == 1.0
    assert summary["scorers"]["wrong"]["verdict"].startswith("no better than random")
    store = RunStore(run)
    rows = {r["scorer"]: r for r in store.read("integrity", 1)}
    assert set(rows) == {"right", "wrong", "combined"} and rows["right"]["auc"] == 1.0
    assert store.read_summary("integrity-r1")["groups_with_gold"] == 6
    with pytest.raises(TaoError, match="refusing to train round 1: .*wrong: no better than random"):
        check_integrity(store, 1)
    assert check_integrity(store, 1, force=True) == ["wrong", "combined"]
    assert check_integrity(store, 2) == []  # no integrity stored for round 2: nothing to check


def tao(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TAO, *args], capture_output=True, text=True, timeout=600)


def test_train_refuses_a_failing_scorer_without_force(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    _hand_made_run(run)
    gold = write_jsonl(tmp_path / "gold.jsonl",
                       [{"id": f"q{i}", "prompt": "x", "answer": str(2 * i)} for i in range(6)])
    run_integrity(RunStore(run), str(gold), round_=1, db=None)
    args = ["train", "--run-dir", str(run), "--model", str(tiny_model_dir), "--set", "train.max_steps=1",
            "--set", "train.batch_size=2", "--set", "train.max_length=64", "--set", "train.lora_r=2"]
    res = tao(*args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: refusing to train round 1") and "--force" in res.stderr
    assert not (run / "models" / "round-1").exists()
    res = tao(*args, "--force")
    assert res.returncode == 0, res.stderr
    assert (run / "models" / "round-1" / "config.json").is_file()


def test_degenerate_paid_counts_rewarded_non_answers():
    groups = [[GradedCandidate(False, "z", {"s": 1.0, "t": 0.0}, degenerate=True),
               GradedCandidate(False, "z", {"s": 0.5, "t": None}, degenerate=True),
               GradedCandidate(True, "a", {"s": 1.0, "t": 1.0})]]
    assert scorer_integrity(groups, "s")["degenerate_paid"] == 2
    assert scorer_integrity(groups, "t")["degenerate_paid"] == 0


def test_run_integrity_finds_degenerate_sql(tmp_path):
    from tests.helpers.sql import make_db

    db = make_db(tmp_path / "shop.sqlite")
    run = tmp_path / "run"
    store = RunStore(run)
    sqls = ["SELECT COUNT(*) FROM customer WHERE country = 'Mars'", "SELECT COUNT(*) FROM customer WHERE name = 'Zed'",
            "SELECT COUNT(*) FROM customer WHERE country = 'France'"]
    cands = [Candidate("q0", f"c{j}", "plain", [], s, s, s, round=1) for j, s in enumerate(sqls)]
    scores = [Score("q0", f"c{j}", name, 1.0, 1) for j in range(3) for name in ("exec", "combined")]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    store.write_part("scores", "r1-00000", scores, Score.SCHEMA)
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": "q0", "prompt": "x", "sql": sqls[2]}])
    summary = run_integrity(store, str(gold), round_=1, db=str(db))
    assert summary["degenerate_candidates"] == 2 and summary["degenerate_correct"] == 0
    assert summary["scorers"]["exec"]["degenerate_paid"] == 2
    assert {r["scorer"]: r["degenerate_paid"] for r in store.read("integrity", 1)} == {"exec": 2, "combined": 2}
