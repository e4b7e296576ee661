"""The consensus-band prompt filter and class-balanced selection of categorical answers."""

from __future__ import annotations

import pytest

from opentao.config import load_config
from opentao.errors import TaoError
from opentao.records import Candidate, Prompt, Score, TrainExample
from opentao.store import RunStore
from opentao.train.select import balance_classes, band_prompts, categorical_classes, top_share


def group(pid: str, answers: list[str]) -> list[Candidate]:
    return [Candidate(pid, f"{pid}#{i}", "plain", [], a, a, a, round=1) for i, a in enumerate(answers)]


def test_top_share_and_band():
    assert top_share(group("p", ["yes", "Yes.", "no", ""])) == 0.5  # unanswered counts in K
    assert top_share(group("p", ["", ""])) == 0.0
    cands = group("a", ["x"] * 5) + group("b", ["x", "y", "x", "z", "w"]) + group("c", ["1", "2", "3", "4", "5"])
    assert band_prompts(cands, 0.2, 0.8) == {"b": 0.4, "c": 0.2}  # a: everyone agrees (1.0) → out
    assert band_prompts(cands, 0.3, 1.0) == {"a": 1.0, "b": 0.4}


def _yes_no_pool(n_prompts: int = 10) -> list[Candidate]:
    # candidates: 50% yes, 50% no overall; one span answer per prompt that is not a class
    out = []
    for i in range(n_prompts):
        out += group(f"q{i}", ["yes", "no", "yes" if i % 2 else "no", "no" if i % 2 else "yes", f"span {i}"])
    return out


def test_classes_are_answers_shared_across_prompts():
    shares = categorical_classes(_yes_no_pool())
    assert shares == {"yes": 0.5, "no": 0.5}  # "span i" appears for one prompt only: not a class


def test_balance_caps_the_kept_share_near_the_candidates():
    pool = _yes_no_pool()
    # kept: 8 yes (scores descending), 2 no, 1 span: yes is 80% of the classed examples vs 50% in the candidates
    ex = [TrainExample(f"q{i}", "rft", [], "yes", chosen_id=f"q{i}#0", chosen_score=1.0 - i / 100) for i in range(8)]
    ex += [TrainExample(f"q{i}", "rft", [], "no", chosen_id=f"q{i}#1", chosen_score=0.5) for i in (8, 9)]
    ex += [TrainExample("q0", "rft", [], "span 0", chosen_id="q0#4", chosen_score=0.9)]
    kept, stats = balance_classes(ex, pool, slack=0.1)
    yes = [e for e in kept if e.chosen == "yes"]
    no = [e for e in kept if e.chosen == "no"]
    assert len(no) == 2 and len(yes) == 3  # 3 of 5 classed = 60% = the cap (50% + slack); 4 of 6 would be 67%
    assert [e.chosen_id for e in yes] == ["q0#0", "q1#0", "q2#0"]  # the highest-scored yes are kept
    assert any(e.chosen == "span 0" for e in kept) and stats["dropped"] == 5
    same, st = balance_classes(ex[:1] + ex[8:], pool, slack=0.1)  # 1 yes, 2 no: no at 67% > 60% → 1 no dropped
    assert [e.chosen for e in same] == ["yes", "no", "span 0"] and st["dropped"] == 1


def test_uniform_target_caps_at_one_over_the_classes_not_the_candidates_bias():
    # candidates: 80% no over 10 prompts; kept: 2 yes, 6 no
    pool = []
    for i in range(10):
        pool += group(f"q{i}", ["no", "no", "no", "no", "yes"])
    ex = [TrainExample(f"q{i}", "rft", [], "yes", chosen_id=f"q{i}#4", chosen_score=1.0) for i in (0, 1)]
    ex += [TrainExample(f"q{i}", "rft", [], "no", chosen_id=f"q{i}#0", chosen_score=1.0 - i / 100) for i in range(2, 8)]
    own, st = balance_classes(ex, pool, slack=0.1)  # no at 75% < 80% + 10%: the bias passes
    assert len(own) == 8 and st["dropped"] == 0 and st["target"] == "candidates"
    uni, st = balance_classes(ex, pool, slack=0.0, target="uniform")  # 50/50: 2 yes, 2 no (the best-scored)
    assert [e.chosen_id for e in uni] == ["q0#4", "q1#4", "q2#0", "q3#0"] and st["kept_class_counts_after"] == \
        {"yes": 2, "no": 2}
    slack, _ = balance_classes(ex, pool, slack=0.1, target="uniform")  # no ≤ 60%: 3 no with the 2 yes
    assert [e.chosen for e in slack].count("no") == 3
    with pytest.raises(ValueError, match="uniform"):
        balance_classes(ex, pool, slack=0.1, target="gold")
    assert load_config(None, ["train.class_target=uniform"]).train.class_target == "uniform"
    with pytest.raises(TaoError):
        load_config(None, ["train.class_target=gold"])


def test_band_and_balance_through_the_train_stage(tmp_path):
    from opentao.train.stage import examples_for_round

    store = RunStore(tmp_path / "run")
    pool = _yes_no_pool()
    store.write_part("prompts", "r1", [Prompt(f"q{i}", [{"role": "user", "content": str(i)}], 1) for i in range(10)],
                     Prompt.SCHEMA)
    store.write_part("candidates", "r1-0", pool, Candidate.SCHEMA)

    def reward(c: Candidate) -> float:  # every prompt keeps a yes; only q0..q3 also a no
        return 1.0 if c.answer == "yes" else 0.9 if c.answer == "no" and int(c.prompt_id[1:]) < 4 else 0.0

    store.write_part("scores", "r1-0", [Score(c.prompt_id, c.candidate_id, "combined", reward(c), 1) for c in pool],
                     Score.SCHEMA)
    cfg = load_config(None, ["train.balance_classes=true", "train.max_per_prompt=2", "train.threshold=0.5",
                             "score.band=[0.2, 0.4]"])
    ex = examples_for_round(store, cfg.train, 1, band=cfg.score.band)
    said = [e.chosen for e in ex]
    assert said.count("no") == 4 and said.count("yes") == 6  # 10 yes + 4 no (71% yes) → 6 + 4 (60%)
    sel = store.read_summary("select-r1")
    assert sel["band"]["inside"] == 10 and sel["balance"]["dropped"] == 4
    tight = load_config(None, ["score.band=[0.5, 1.0]"])
    assert examples_for_round(RunStore(tmp_path / "run"), tight.train, 1, band=tight.score.band) == ex  # cached
    with pytest.raises(TaoError, match="band"):
        load_config(None, ["score.band=[0.9, 0.1]"])
