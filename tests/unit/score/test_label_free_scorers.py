"""soft_vote, self_certainty and entropy: hand-checkable groups and the tiny random model."""

from __future__ import annotations

import math

import pytest
import torch

from opentao.records import Candidate, Prompt
from opentao.score.certainty import TokenDistributionScorer, token_stats
from opentao.score.registry import build_scorer
from opentao.score.stage import with_round_model

PROMPT = Prompt("p", [{"role": "user", "content": "Is the sky blue?"}])


def cands(*answers: str) -> list[Candidate]:
    return [Candidate("p", f"p#{i}", "plain", [], a, a, a) for i, a in enumerate(answers)]


def test_soft_vote_is_the_vote_share():
    scorer, _ = build_scorer({"type": "soft_vote"})
    assert scorer.name == "soft_vote"
    assert scorer.score_group(PROMPT, cands("Yes", "yes.", "no", "")) == pytest.approx([2 / 3, 2 / 3, 1 / 3, 0.0])
    assert scorer.score_group(PROMPT, cands("3", "3.0", "3", "4")) == pytest.approx([0.75, 0.75, 0.75, 0.25])


def test_soft_vote_abstains_without_a_strict_plurality():
    scorer, _ = build_scorer({"type": "soft_vote"})
    assert scorer.score_group(PROMPT, cands("yes", "no", "yes", "no")) == [None] * 4  # tie at the top
    assert scorer.score_group(PROMPT, cands("a", "b", "c")) == [None] * 3  # every answer differs
    plain, _ = build_scorer({"type": "majority_vote", "graded": True})  # the old graded vote does not abstain
    assert plain.score_group(PROMPT, cands("yes", "no", "yes", "no")) == [0.5] * 4


def test_token_stats_by_hand():
    # one sequence, two tokens, V = 4: a uniform step and a peaked one; the second row is padding
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [math.log(7.0), 0.0, 0.0, 0.0], [5.0, 1.0, 2.0, 3.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    st = token_stats(logits, mask)
    p = torch.tensor([0.7, 0.1, 0.1, 0.1])
    kl_u = float((0.25 * torch.log(0.25 / p)).sum())  # KL(U || p) of the peaked step; 0 for the uniform one
    h = float(-(p * p.log()).sum())
    assert float(st["self_certainty"][0]) == pytest.approx(kl_u / 2, rel=1e-5)
    assert float(st["entropy"][0]) == pytest.approx((math.log(4) + h) / 2, rel=1e-5)


@pytest.fixture(scope="module")
def uniform_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a zero LM head: every next-token distribution is uniform."""
    from opentao.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    model.config.tie_word_embeddings = False
    out = tmp_path_factory.mktemp("uniform")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_uniform_model_scores_zero_certainty_and_max_entropy(uniform_model_dir):
    group = cands("Yes, it is.", "No.", "")
    sc = TokenDistributionScorer("self_certainty", str(uniform_model_dir), dtype="fp32")
    en = TokenDistributionScorer("entropy", str(uniform_model_dir), dtype="fp32")
    V = sc._load()[0].get_output_embeddings().weight.shape[0]
    s, e = sc.score_group(PROMPT, group), en.score_group(PROMPT, group)
    assert s[:2] == pytest.approx([0.0, 0.0], abs=1e-5) and s[2] is None  # empty response: abstain
    assert e[:2] == pytest.approx([-math.log(V)] * 2, rel=1e-5) and e[2] is None


def test_batched_scores_equal_one_at_a_time(tiny_model_dir):
    group = cands("Yes, it is blue on a clear day.", "No.", "Maybe not: it depends on the weather")
    for kind in ("self_certainty", "entropy"):
        batched = TokenDistributionScorer(kind, str(tiny_model_dir), batch_size=8, dtype="fp32")
        single = TokenDistributionScorer(kind, str(tiny_model_dir), batch_size=1, dtype="fp32")
        b, s = batched.score_group(PROMPT, group), single.score_group(PROMPT, group)
        assert b == pytest.approx(s, rel=1e-4, abs=1e-5)
        assert len(set(b)) == 3  # the random model does tell the responses apart (its distributions are near uniform)
    assert all(x > 0 for x in TokenDistributionScorer("self_certainty", str(tiny_model_dir)).score_group(PROMPT, group))


def test_score_stage_fills_in_the_round_model():
    specs = with_round_model([{"type": "self_certainty"}, {"type": "entropy", "model": "x"}, {"type": "regex",
                              "pattern": "a"}], "models/round-1")
    assert [s.get("model") for s in specs] == ["models/round-1", "x", None]
    from opentao.errors import TaoError

    with pytest.raises(TaoError, match="needs 'model'"):
        build_scorer({"type": "entropy"})
