"""Collapse telemetry, the label-free choice of the kept round, and the promotion refusal."""

from __future__ import annotations

import math

import pytest

from opentao.config import RunConfig
from opentao.records import Candidate, Prompt, Score
from opentao.store import RunStore
from opentao.telemetry import choose_round, is_collapsed, promotion_refusal, round_telemetry


def cands(answers: list[str], pid: str = "p") -> list[Candidate]:
    return [Candidate(f"{pid}{i // 4}", f"{pid}{i // 4}#{i % 4}", "plain", [], a, a, a, num_tokens=len(a))
            for i, a in enumerate(answers)]


def test_telemetry_by_hand():
    group = cands(["Yes", "yes.", "no", "yes", "", "No", "yes", "yes"])
    rewards = {c.candidate_id: 1.0 for c in group[:4]} | {group[4].candidate_id: None}
    tel = round_telemetry(group, rewards)
    assert tel["answered"] == 7 and tel["distinct_answers"] == 2 and tel["prompts"] == 2
    assert tel["top_answer_share"] == pytest.approx(5 / 7)
    assert tel["answer_entropy"] == pytest.approx(-(5 / 7 * math.log2(5 / 7) + 2 / 7 * math.log2(2 / 7)))
    assert [t["answer"] for t in tel["top_answers"]] == ["yes", "no"]
    assert tel["mean_reward"] == 1.0 and tel["mean_tokens"] == pytest.approx(sum(map(len, ["Yes", "yes.", "no",
                                                                                          "yes", "", "No", "yes", "yes"])) / 8)
    assert is_collapsed(tel, 0.9, 0.5) == []


def test_a_constant_answer_is_collapse():
    tel = round_telemetry(cands(["yes"] * 19 + ["no"]), {})
    why = is_collapsed(tel, 0.9, 0.5)
    assert len(why) == 2 and "top answer share 0.95" in why[0] and "entropy 0.29" in why[1]
    assert tel["mean_reward"] is None
    assert is_collapsed(round_telemetry(cands([]), {}), 0.9, 0.5) == []  # nothing answered: nothing to say


def test_choose_round_skips_collapsed_and_prefers_the_earliest_tie():
    measured = {0: {"mean_reward": 0.4}, 1: {"mean_reward": 0.6}, 2: {"mean_reward": 0.9, "collapse": ["x"]},
                3: {"mean_reward": 0.6}}
    kept = choose_round(measured)
    assert kept["round"] == 1 and kept["excluded"] == {"2": ["x"]} and "0.600" in kept["why"]
    assert choose_round({0: {"mean_reward": None}})["round"] is None


def test_promotion_refusal():
    ok = {"rounds": [{"round": 1, "model_telemetry": {"collapse": []}}], "kept": {"round": 1}}
    assert promotion_refusal(ok) is None
    assert promotion_refusal({"rounds": [{"round": 1, "model_telemetry": None}], "kept": {"round": 1}}) is None
    bad = {"rounds": [{"round": 1, "model_telemetry": {"collapse": ["top answer share 0.97 > 0.9"]}}]}
    assert "collapsed: top answer share" in promotion_refusal(bad)
    assert "kept round 0" in promotion_refusal({"rounds": [{"round": 1}], "kept": {"round": 0, "why": "w"}})


def _round(store: RunStore, r: int, answers: list[str], rewards: list[float]) -> None:
    cs = [Candidate("p", f"p#{r}-{i}", "plain", [], a, a, a, round=r) for i, a in enumerate(answers)]
    store.write_part("candidates", f"r{r}-00000", cs, Candidate.SCHEMA)
    store.write_part("scores", f"r{r}-00000", [Score("p", c.candidate_id, "combined", v, r)
                                               for c, v in zip(cs, rewards)], Score.SCHEMA)


def test_keep_round_with_a_probe(tmp_path, monkeypatch):
    import opentao.pipeline.rounds as pl

    store = RunStore(tmp_path / "run")
    store.write_part("prompts", "r1", [Prompt("p", [{"role": "user", "content": "q"}], round=1)], Prompt.SCHEMA)
    for r in (1, 2):
        (store.model_dir(r)).mkdir(parents=True)
        (store.model_dir(r) / "config.json").write_text("{}")
    _round(store, 1, ["a", "b", "c", "a"], [0.2, 0.2, 0.2, 0.2])  # the base's samples
    _round(store, 2, ["a", "b", "a", "c"], [0.8, 0.8, 0.8, 0.8])  # round 1's model: best
    cfg = RunConfig(run_dir=str(store.root), model="base-model", rounds=2, select={"best_round": True})

    def fake_generate(store_, cfg_, r):  # the probe: round 2's model answers one thing only
        assert r == 3
        _round(store_, 3, ["yes"] * 4, [1.0] * 4)
        return {"candidates": 4}

    monkeypatch.setattr(pl, "stage_generate", fake_generate)
    monkeypatch.setattr(pl, "stage_score", lambda *a: {})
    results = {"rounds": [{"round": r, "telemetry": pl.stage_telemetry(store, cfg, r)} for r in (1, 2)]}
    kept = pl.keep_round(store, cfg, results, report=lambda *_: None)
    assert kept["round"] == 1 and kept["model"] == str(store.model_dir(1))
    assert kept["excluded"].keys() == {"2"}  # round 2's model collapsed to "yes" (reward 1.0 but excluded)
    assert results["rounds"][1]["model_telemetry"]["collapse"]
    assert store.read_summary("telemetry-r3")["sampled_by"] == str(store.model_dir(2))
    assert "collapsed" in promotion_refusal(results)
    cfg_last = RunConfig(run_dir=str(store.root), model="base-model", rounds=2)
    assert pl.keep_round(store, cfg_last, {"rounds": results["rounds"]}, report=lambda *_: None)["round"] == 2
