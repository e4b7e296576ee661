"""Collapse telemetry of a round's samples, and the label-free choice of which round's model to keep.

Label-free RL on a weak model tends to *rise then fall*: the policy drifts to one answer that the vote (or a
gameable verifier) keeps rewarding — docqa's "always yes". Every round records, over its candidates (the
samples of the model that sampled the round):

* ``top_answer_share`` — the share of answered candidates that give the round's most common (normalized) answer,
  across all prompts: one constant answer to different questions is the collapse;
* ``answer_entropy`` — Shannon entropy (bits) of that answer distribution;
* ``top_answers`` — the five most common answers and their shares (for yes/no answers: the class distribution);
* ``mean_tokens``, ``mean_chars`` — response length; ``mean_reward`` — the mean combined reward.

A round's samples are **collapsed** when ``top_answer_share > collapse.max_top_share`` or ``answer_entropy <
collapse.min_entropy``. Defaults 0.9 and 0.5 bits: the kept yes/no answers of healthy docqa rounds were 38–70%
*yes* (DEVELOPERS.md), i.e. top share ≤ 0.7 and entropy ≥ 0.88 bits, while the collapsed arms answered one
class to ~every question (share → 1, entropy → 0); a 90/10 split is 0.47 bits, so the two limits agree on a
binary task, and a multi-answer task (SQL, spans) sits far from both.

The model trained in round r is measured by the samples it draws: round r+1's candidates, or, after the last
round, a *probe* round R+1 that is generated and scored but not trained (``select.best_round``). The kept model
is the one whose samples earn the highest mean combined reward among those not collapsed (the base is a
candidate too; ties go to the earlier model): :func:`choose_round`.
"""

from __future__ import annotations

import math
from typing import Any

from opentao.records import Candidate
from opentao.text import normalize_answer, tally

__all__ = ["choose_round", "is_collapsed", "promotion_refusal", "round_telemetry"]


def round_telemetry(candidates: list[Candidate], rewards: dict[str, float | None]) -> dict[str, Any]:
    """The statistics of the module doc over one round's candidates (``rewards``: candidate id → combined)."""
    answers = [normalize_answer(c.answer or c.response) for c in candidates]
    answers = [a for a in answers if a]
    counts = tally(answers)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties in order of first appearance
    n = len(answers)
    entropy = -sum(k / n * math.log2(k / n) for k in counts.values()) if n else None
    vals = [r for c in candidates if (r := rewards.get(c.candidate_id)) is not None]
    return {
        "candidates": len(candidates),
        "answered": n,
        "prompts": len({c.prompt_id for c in candidates}),
        "distinct_answers": len(counts),
        "top_answer_share": max(counts.values()) / n if n else None,
        "answer_entropy": entropy,
        "top_answers": [{"answer": a[:80], "share": k / n} for a, k in ranked[:5]],
        "mean_tokens": sum(c.num_tokens for c in candidates) / len(candidates) if candidates else None,
        "mean_chars": sum(len(c.response) for c in candidates) / len(candidates) if candidates else None,
        "mean_reward": sum(vals) / len(vals) if vals else None,
    }


def is_collapsed(tel: dict[str, Any], max_top_share: float, min_entropy: float) -> list[str]:
    """Why the samples look collapsed ([] when they do not, or when nothing was answered)."""
    why = []
    if tel.get("top_answer_share") is not None and tel["top_answer_share"] > max_top_share:
        why.append(f"top answer share {tel['top_answer_share']:.2f} > {max_top_share}")
    if tel.get("answer_entropy") is not None and tel["answer_entropy"] < min_entropy:
        why.append(f"answer entropy {tel['answer_entropy']:.2f} bits < {min_entropy}")
    return why


def choose_round(measured: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Pick the model to keep from ``{model round: telemetry of its samples (with "collapse" reasons)}``.

    Round 0 is the base. Returns ``{"round", "criterion", "mean_reward", "excluded", "why"}``; ``round`` is None
    when no model has a mean reward and is not collapsed.
    """
    excluded = {r: t["collapse"] for r, t in measured.items() if t.get("collapse")}
    ok = {r: t["mean_reward"] for r, t in measured.items() if r not in excluded and t.get("mean_reward") is not None}
    out: dict[str, Any] = {"criterion": "mean combined reward of the model's own samples (label-free)",
                           "mean_reward": {str(r): t.get("mean_reward") for r, t in sorted(measured.items())},
                           "excluded": {str(r): why for r, why in sorted(excluded.items())}}
    if not ok:
        out.update(round=None, why="no model has a non-collapsed, scored sample set")
        return out
    best = max(sorted(ok), key=lambda r: ok[r])  # max keeps the first (earliest) of equal values
    out.update(round=best, why=f"highest mean reward {ok[best]:.3f} among rounds {sorted(ok)}"
               + (f"; excluded as collapsed: {sorted(excluded)}" if excluded else ""))
    return out


def promotion_refusal(results: dict[str, Any]) -> str | None:
    """Why the last round's model of a ``run_rounds`` result must not be promoted (None: nothing against it):
    its own samples collapsed, or the run kept another round's model."""
    rounds = results.get("rounds") or []
    if not rounds:
        return None
    last = rounds[-1]
    why = (last.get("model_telemetry") or {}).get("collapse")
    if why:
        return f"round {last['round']}'s model collapsed: {'; '.join(why)}"
    kept = results.get("kept") or {}
    if kept.get("round") is not None and kept["round"] != last["round"]:
        return f"the run kept round {kept['round']}, not round {last['round']}: {kept.get('why')}"
    return None
