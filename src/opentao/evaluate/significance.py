"""Is the candidate better than the current model with statistical confidence? A paired sign test, and a paired
bootstrap CI of the accuracy difference.

Both models are scored on the same examples; each example is a *win* (candidate scored higher), a *loss* or a
*tie*. Under the null hypothesis "neither is better" a non-tied example is a win with probability 1/2, so the
one-sided p-value of ``w`` wins among ``n = w + l`` non-tied examples is ``P(X >= w)``, ``X ~ Binomial(n, 1/2)``
(the exact sign test; Dixon & Mood 1946). The gate promotes only when ``p <= 1 - confidence``. The test uses the
sign of each paired difference, not its size, so it needs no distributional assumption and works for 0/1
correctness, per-prompt judge win shares and continuous rewards alike. With few examples it cannot reach a high
confidence at all: at 95 % it needs at least 5 non-tied examples, all wins (1/32 ≈ 0.031).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from opentao.errors import TaoError

__all__ = ["paired_bootstrap", "paired_change", "percentile_ci", "sign_test"]


def sign_test(current: Sequence[float], candidate: Sequence[float]) -> dict[str, float | int]:
    """Wins, losses, ties of ``candidate`` over ``current`` (paired) and the one-sided exact p-value."""
    if len(current) != len(candidate):
        raise TaoError(f"sign test needs paired scores, got {len(current)} and {len(candidate)}")
    wins = sum(b > a for a, b in zip(current, candidate))
    losses = sum(b < a for a, b in zip(current, candidate))
    n = wins + losses
    p = sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n if n else 1.0
    return {"wins": wins, "losses": losses, "ties": len(current) - n, "p_value": p}


def paired_bootstrap(base: Sequence[bool], arm: Sequence[bool], *, n_boot: int = 2000,
                     seed: int = 0) -> dict[str, float | list[float]]:
    """Difference of accuracies (arm − base, in [−1, 1]) with a 95% percentile CI from ``n_boot`` resamples."""
    if len(base) != len(arm):
        raise TaoError(f"paired bootstrap needs equal lengths, got {len(base)} and {len(arm)}")
    n = len(base)
    if n == 0:
        raise TaoError("paired bootstrap over zero examples")
    diff = [int(bool(a)) - int(bool(b)) for a, b in zip(arm, base)]
    rng = random.Random(seed)
    deltas = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return {"delta": sum(diff) / n, "ci95": percentile_ci(deltas), "n": n, "n_boot": n_boot}


def percentile_ci(deltas: list[float]) -> list[float]:
    """The 2.5th and 97.5th percentiles of sorted bootstrap statistics."""
    return [deltas[int(0.025 * (len(deltas) - 1))], deltas[int(round(0.975 * (len(deltas) - 1)))]]


def paired_change(base: dict, tuned: dict, *, seed: int = 0) -> dict | None:
    """:func:`paired_bootstrap` of two eval summaries (``{"per_example": {"ids", "correct"}}``, as
    ``evaluate_task`` writes them) on the questions both answered, in the base's order, with the counts of questions
    ``gained`` (tuned right, base wrong) and ``lost``; None when either lacks per-example results or they share no
    question."""
    if not base.get("per_example") or not tuned.get("per_example"):
        return None
    theirs = dict(zip(tuned["per_example"]["ids"], tuned["per_example"]["correct"]))
    pairs = [(x, theirs[i]) for i, x in zip(base["per_example"]["ids"], base["per_example"]["correct"]) if i in theirs]
    if not pairs:
        return None
    b, t = [x for x, _ in pairs], [y for _, y in pairs]
    return {**paired_bootstrap(b, t, seed=seed), "gained": sum(y and not x for x, y in pairs),
            "lost": sum(x and not y for x, y in pairs)}
