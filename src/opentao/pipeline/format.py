"""One-line renderings of stage results for the run's report lines."""

from __future__ import annotations


def fmt_acc(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['accuracy']:.1%} ({e['correct']}/{e['n']}, 95% CI {lo:.1%}–{hi:.1%})"


def fmt_means(means: dict) -> str:
    return ", ".join(f"{k}={v:.2f}" for k, v in means.items() if v is not None) or "n/a"
