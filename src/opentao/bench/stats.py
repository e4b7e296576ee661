"""Paired bootstrap over held-out examples (Efron & Tibshirani 1993; as used for MT/QA system comparison by
Koehn 2004): resample example indices with replacement, recompute (arm accuracy − base accuracy) on the same
resampled examples, and take the 2.5th and 97.5th percentiles. Pairing removes the variance that comes from
which examples happen to be in the test set.

With several seeds per arm, :func:`pooled_paired_bootstrap` adds the seed level (a two-level, hierarchical
bootstrap): each resample draws the seeds with replacement and the held-out examples with replacement, and
averages the drawn seeds' paired deltas, so its CI covers both the run-to-run (seed) variance and the test-set
variance. With one seed it is :func:`paired_bootstrap` draw for draw."""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentao.errors import TaoError
from opentao.evaluate.significance import paired_bootstrap, percentile_ci

__all__ = ["aligned", "aligned_seeds", "paired_bootstrap", "paired_bootstrap_balanced", "pooled_paired_bootstrap",
           "pooled_paired_bootstrap_balanced"]


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
    return {"delta": stat(diffs), "ci95": percentile_ci(deltas), "n": len(base), "n_boot": n_boot}


def _check_seeds(base: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]], what: str) -> int:
    """The number of examples every seed's paired evals share; bad shapes raise :class:`TaoError`."""
    if len(base) != len(arm):
        raise TaoError(f"{what} needs one base and one arm eval per seed, got {len(base)} and {len(arm)}")
    if not arm:
        raise TaoError(f"{what} over zero seeds")
    sizes = {len(x) for x in (*base, *arm)}
    if len(sizes) != 1:
        raise TaoError(f"{what} needs every seed's evals on the same examples, got lengths {sorted(sizes)}")
    n = sizes.pop()
    if n == 0:
        raise TaoError(f"{what} over zero examples")
    return n


def _seed_draw(rng: random.Random, n_seeds: int) -> list[int]:
    """The seeds of one resample, with replacement. One seed draws nothing, so that the example draws (and the
    result) are exactly :func:`paired_bootstrap`'s for the same ``seed``."""
    return [rng.randrange(n_seeds) for _ in range(n_seeds)] if n_seeds > 1 else [0]


def pooled_paired_bootstrap(base: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]], *, n_boot: int = 2000,
                            seed: int = 0) -> dict[str, float | int | list[float]]:
    """Mean over seeds of (arm − base accuracy) with a 95% percentile CI from a two-level paired bootstrap.

    ``base[s]`` and ``arm[s]`` are seed ``s``'s per-example correctness on the same held-out examples in the same
    order (every seed on the same test set: pass one base run repeated when the base cannot vary by seed). Each of
    the ``n_boot`` resamples draws the seeds with replacement, then the example indices with replacement — once,
    shared by the drawn seeds, because the seeds were evaluated on one and the same test set (independent draws per
    seed would average the test-set noise away and make the CI too narrow) — and takes the mean of the drawn seeds'
    paired deltas on those examples. Returns ``delta`` (the mean of ``per_seed``), ``ci95``, ``per_seed`` (each
    seed's delta), ``seeds`` (their count), ``n`` (examples per seed) and ``n_boot``."""
    n = _check_seeds(base, arm, "pooled bootstrap")
    diffs = [[int(bool(a)) - int(bool(b)) for a, b in zip(ar, br)] for br, ar in zip(base, arm)]
    per_seed = [sum(d) / n for d in diffs]
    rng = random.Random(seed)
    stats = []
    for _ in range(n_boot):
        drawn = _seed_draw(rng, len(diffs))
        idx = [rng.randrange(n) for _ in range(n)]
        stats.append(sum(sum(diffs[s][i] for i in idx) / n for s in drawn) / len(drawn))
    return {"delta": sum(per_seed) / len(per_seed), "ci95": percentile_ci(sorted(stats)), "per_seed": per_seed,
            "seeds": len(diffs), "n": n, "n_boot": n_boot}


def pooled_paired_bootstrap_balanced(base: Sequence[Sequence[bool]], arm: Sequence[Sequence[bool]],
                                     classes: Sequence[str], *, n_boot: int = 2000,
                                     seed: int = 0) -> dict[str, float | int | list[float]]:
    """:func:`pooled_paired_bootstrap` of *balanced* accuracy (mean per-class recall), the example draws stratified
    by class as in :func:`paired_bootstrap_balanced` (``classes[i]`` is example ``i``'s class in every seed); with
    one seed it is that function draw for draw."""
    n = _check_seeds(base, arm, "pooled balanced bootstrap")
    if len(classes) != n:
        raise TaoError(f"pooled balanced bootstrap needs one class per example, got {len(classes)} for {n}")
    members: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        members.setdefault(c, []).append(i)
    if len(members) < 2:
        raise TaoError(f"balanced accuracy needs at least two classes, got {sorted(members)}")
    groups = list(members.values())
    diffs = [[int(bool(a)) - int(bool(b)) for a, b in zip(ar, br)] for br, ar in zip(base, arm)]

    def stat(d: list[int], picks: list[list[int]]) -> float:  # the expression paired_bootstrap_balanced uses
        return sum(sum(d[i] for i in g) / len(g) for g in picks) / len(picks)

    per_seed = [stat(d, groups) for d in diffs]
    rng = random.Random(seed)
    stats = []
    for _ in range(n_boot):
        drawn = _seed_draw(rng, len(diffs))
        picks = [[g[rng.randrange(len(g))] for _ in g] for g in groups]
        stats.append(sum(stat(diffs[s], picks) for s in drawn) / len(drawn))
    return {"delta": sum(per_seed) / len(per_seed), "ci95": percentile_ci(sorted(stats)), "per_seed": per_seed,
            "seeds": len(diffs), "n": n, "n_boot": n_boot}


def aligned(base: dict, arm: dict) -> tuple[list[bool], list[bool]]:
    """Per-example correctness of two evals (``{"ids": [...], "correct": [...]}``) on their common ids."""
    b = dict(zip(base["ids"], base["correct"]))
    a = dict(zip(arm["ids"], arm["correct"]))
    common = [i for i in base["ids"] if i in a]
    if not common:
        raise TaoError("the two evals share no example ids")
    return [b[i] for i in common], [a[i] for i in common]


def aligned_seeds(base: dict, arms: Sequence[dict]) -> tuple[list[str], list[bool], list[list[bool]]]:
    """One base eval and several seeds' evals of an arm (each ``{"ids", "correct"}``) on the ids they all share,
    in the base's order: ``(ids, base correctness, [each seed's correctness])`` — the input of
    :func:`pooled_paired_bootstrap` (the base repeated per seed)."""
    if not arms:
        raise TaoError("no seed evals to align with the base")
    b = dict(zip(base["ids"], base["correct"]))
    per = [dict(zip(a["ids"], a["correct"])) for a in arms]
    common = [i for i in base["ids"] if all(i in a for a in per)]
    if not common:
        raise TaoError("the base and the seeds' evals share no example ids")
    return common, [b[i] for i in common], [[a[i] for i in common] for a in per]
