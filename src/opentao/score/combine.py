"""Combine several scorers' ratings of one group into a single reward per candidate.

Per scorer, scores may first be normalized *within the group* (abstentions left out):

* ``"none"`` — raw scores;
* ``"zscore"`` — ``(x - mean) / std`` (population std); a group with zero variance maps to all 0.0;
* ``"rank"`` — the average rank of each score scaled to [0, 1] (lowest 0.0, highest 1.0, ties share their
  mean rank; a single score or all-equal scores give 0.5).

A scorer spec may set its own ``normalize:`` (e.g. ``zscore`` for a reward model's unbounded logits next to
0/1 verifiers), which overrides ``score.normalize`` for that scorer only.

Then each candidate's reward is the weighted mean over the scorers that did not abstain for it:
``sum(w * s) / sum(|w|)``. A candidate every scorer abstained on (or only zero-weight scorers rated) gets None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from opentao.errors import TaoError

__all__ = ["NORMALIZATIONS", "combine", "normalize_scores"]

NORMALIZATIONS = ("none", "zscore", "rank")


def _zscore(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    if var <= 1e-24:
        return [0.0] * len(values)
    sd = math.sqrt(var)
    return [(v - mean) / sd for v in values]


def _rank(values: list[float]) -> list[float]:
    n = len(values)
    if n == 1:
        return [0.5]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        mean_rank = (i + j) / 2  # 0-based average rank of the tie block
        for k in range(i, j + 1):
            ranks[order[k]] = mean_rank / (n - 1)
        i = j + 1
    return ranks


def normalize_scores(scores: Sequence[float | None], normalize: str = "none") -> list[float | None]:
    """Normalize one scorer's group scores (None stays None); see the module docstring."""
    if normalize not in NORMALIZATIONS:
        raise TaoError(f"unknown score normalization {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
    out: list[float | None] = list(scores)
    idx = [i for i, s in enumerate(scores) if s is not None]
    if normalize == "none" or not idx:
        return out
    values = [float(scores[i]) for i in idx]  # type: ignore[arg-type]
    normed = _zscore(values) if normalize == "zscore" else _rank(values)
    for i, v in zip(idx, normed):
        out[i] = v
    return out


def combine(
    per_scorer: dict[str, list[float | None]], weights: dict[str, float], normalize: str = "none",
    per_scorer_normalize: dict[str, str] | None = None,
) -> list[float | None]:
    """Weighted per-candidate combination of several scorers' group scores (module docstring has the rule).

    ``weights`` maps scorer name → weight; a scorer missing from it has weight 1.0. ``per_scorer_normalize``
    maps scorer name → its own normalization (others use ``normalize``).
    """
    if normalize not in NORMALIZATIONS:
        raise TaoError(f"unknown score normalization {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
    if not per_scorer:
        return []
    lengths = {name: len(v) for name, v in per_scorer.items()}
    if len(set(lengths.values())) != 1:
        raise TaoError(f"scorers returned different numbers of scores: {lengths}")
    n = next(iter(lengths.values()))
    own = per_scorer_normalize or {}
    normed = {name: normalize_scores(v, own.get(name, normalize)) for name, v in per_scorer.items()}
    out: list[float | None] = []
    for i in range(n):
        total = norm = 0.0
        for name, values in normed.items():
            v = values[i]
            if v is None:
                continue
            w = float(weights.get(name, 1.0))
            total += w * v
            norm += abs(w)
        out.append(total / norm if norm > 0 else None)
    return out
