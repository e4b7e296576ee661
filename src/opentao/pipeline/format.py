"""One-line renderings of stage results for the run's report lines."""

from __future__ import annotations


def fmt_acc(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['accuracy']:.1%} ({e['correct']}/{e['n']}, 95% CI {lo:.1%}–{hi:.1%})"


def fmt_change(base: dict, tuned: dict, seed: int = 0) -> str | None:
    """One line for :func:`opentao.evaluate.significance.paired_change` of two evals (the change in points, the
    questions gained and lost, the paired 95% CI and a verdict); None when it is None."""
    from opentao.evaluate.significance import paired_change

    d = paired_change(base, tuned, seed=seed)
    if d is None:
        return None
    lo, hi = d["ci95"]
    verdict = "a gain" if lo > 0 else "a loss" if hi < 0 else "no significant change"
    return (f"change {100 * d['delta']:+.1f} points ({d['gained']} questions gained, {d['lost']} lost; paired "
            f"bootstrap over the same {d['n']} questions, 95% CI {100 * lo:+.1f} to {100 * hi:+.1f}: {verdict})")


def fmt_means(means: dict) -> str:
    return ", ".join(f"{k}={v:.2f}" for k, v in means.items() if v is not None) or "n/a"
