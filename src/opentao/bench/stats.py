"""Paired bootstrap over held-out examples (Efron & Tibshirani 1993; as used for MT/QA system comparison by
Koehn 2004): resample example indices with replacement, recompute (arm accuracy − base accuracy) on the same
resampled examples, and take the 2.5th and 97.5th percentiles. Pairing removes the variance that comes from
which examples happen to be in the test set."""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentao.errors import TaoError


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
    return {"delta": sum(diff) / n, "ci95": _percentile_ci(deltas), "n": n, "n_boot": n_boot}


def _percentile_ci(deltas: list[float]) -> list[float]:
    """The 2.5th and 97.5th percentiles of sorted bootstrap statistics."""
    return [deltas[int(0.025 * (len(deltas) - 1))], deltas[int(round(0.975 * (len(deltas) - 1)))]]


def paired_bootstrap_balanced(base: Sequence[bool], arm: Sequence[bool], classes: Sequence[str], *,
                              n_boot: int = 2000, seed: int = 0) -> dict[str, float | list[float]]:
    """Difference of *balanced* accuracies (mean over classes of the per-class accuracy, i.e. recall) of two
    paired evals, with a 95% CI from a bootstrap stratified by class: each class's examples are resampled within
    the class, so every resample keeps the class sizes and the statistic stays defined."""
    if not len(base) == len(arm) == len(classes):
        raise TaoError(f"balanced bootstrap needs equal lengths, got {len(base)}, {len(arm)} and {len(classes)}")
    by_class: dict[str, list[int]] = {}
    for a, b, c in zip(arm, base, classes):
        by_class.setdefault(c, []).append(int(bool(a)) - int(bool(b)))
    if len(by_class) < 2:
        raise TaoError(f"balanced accuracy needs at least two classes, got {sorted(by_class)}")
    diffs = list(by_class.values())
    rng = random.Random(seed)

    def stat(groups: list[list[int]]) -> float:
        return sum(sum(g) / len(g) for g in groups) / len(groups)

    deltas = sorted(stat([[d[rng.randrange(len(d))] for _ in d] for d in diffs]) for _ in range(n_boot))
    return {"delta": stat(diffs), "ci95": _percentile_ci(deltas), "n": len(base), "n_boot": n_boot}


def aligned(base: dict, arm: dict) -> tuple[list[bool], list[bool]]:
    """Per-example correctness of two evals (``{"ids": [...], "correct": [...]}``) on their common ids."""
    b = dict(zip(base["ids"], base["correct"]))
    a = dict(zip(arm["ids"], arm["correct"]))
    common = [i for i in base["ids"] if i in a]
    if not common:
        raise TaoError("the two evals share no example ids")
    return [b[i] for i in common], [a[i] for i in common]
