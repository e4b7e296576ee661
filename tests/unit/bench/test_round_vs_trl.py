"""The TRL side's reward wrapper of ``benchmarks/round_vs_trl.py``: a flat TRL batch cut back into groups, each
scored exactly as the score stage scores it; completions cut after the first stop string."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from opentao.config import load_config
from opentao.records import Candidate, Prompt
from opentao.score.registry import build_scorers, score_group_all

REPO = Path(__file__).resolve().parents[3]
SCORERS = [{"type": "length_penalty", "relative": 1.0}, {"type": "regex", "pattern": "SELECT", "weight": 2}]


def _bench():
    spec = importlib.util.spec_from_file_location("round_vs_trl", REPO / "benchmarks" / "round_vs_trl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cut_at_stop_keeps_the_first_stop():
    cut = _bench().cut_at_stop
    assert cut("SELECT 1; SELECT 2;", [";", "\n\n"]) == "SELECT 1;"
    assert cut("SELECT 1\n\nmore; x", [";", "\n\n"]) == "SELECT 1\n\n"
    assert cut("no stop here", [";"]) == "no stop here"
    assert cut("a;b", []) == "a;b"


def test_reward_groups_consecutive_completions_and_combines_like_the_score_stage():
    bench = _bench()
    cfg = load_config(None, None, **{"score.scorers": SCORERS, "generate.stop": [";"]})
    prompts = {pid: Prompt(pid, [{"role": "user", "content": f"question {pid}"}]) for pid in ("a", "b")}
    clock = {"reward": 0.0, "reward_calls": 0}
    reward = bench.make_reward(cfg, prompts, 2, "unused", clock)
    texts = ["SELECT 1; trailing junk", "nope nope nope", "x", "SELECT name FROM t;"]
    got = reward(prompts=[None] * 4, completions=[[{"role": "assistant", "content": t}] for t in texts],
                 prompt_id=["a", "a", "b", "b"], completion_ids=[[1]] * 4)
    scorers = build_scorers(SCORERS)
    want = []
    for pid, pair in (("a", ["SELECT 1;", "nope nope nope"]), ("b", ["x", "SELECT name FROM t;"])):
        cands = [Candidate(pid, f"{pid}#{j}", "plain", [], t, t, "") for j, t in enumerate(pair)]
        want += score_group_all(scorers, prompts[pid], cands)[1]
    assert got == pytest.approx(want)
    uncut = [Candidate("a", f"a#{j}", "plain", [], t, t, "") for j, t in enumerate(texts[:2])]
    assert score_group_all(scorers, prompts["a"], uncut)[1] != pytest.approx(got[:2])  # the cut text was scored
    assert clock["reward_calls"] == 1
    with pytest.raises(RuntimeError, match="several prompts"):
        reward(prompts=[None] * 4, completions=[[{"role": "assistant", "content": t}] for t in texts],
               prompt_id=["a", "b", "a", "b"])
    with pytest.raises(RuntimeError, match="whole groups"):
        reward(prompts=[None] * 3, completions=[[{"role": "assistant", "content": t}] for t in texts[:3]],
               prompt_id=["a", "a", "b"])
