"""One-line renderings of stage results for the run's report lines."""

from __future__ import annotations


def fmt_acc(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['accuracy']:.1%} ({e['correct']}/{e['n']}, 95% CI {lo:.1%}–{hi:.1%})"


def fmt_change(base: dict, tuned: dict, seed: int = 0) -> str | None:
    """Tuned − base accuracy of two evals on the same questions with a paired-bootstrap 95% CI
    (:func:`opentao.evaluate.significance.paired_bootstrap`) and a verdict, on the questions both answered; None
    when either lacks per-example results or they share no question."""
    if not base.get("per_example") or not tuned.get("per_example"):
        return None
    from opentao.evaluate.significance import paired_bootstrap

    theirs = dict(zip(tuned["per_example"]["ids"], tuned["per_example"]["correct"]))
    pairs = [(x, theirs[i]) for i, x in zip(base["per_example"]["ids"], base["per_example"]["correct"]) if i in theirs]
    if not pairs:
        return None
    b, t = [x for x, _ in pairs], [y for _, y in pairs]
    d = paired_bootstrap(b, t, seed=seed)
    lo, hi = d["ci95"]
    verdict = "a gain" if lo > 0 else "a loss" if hi < 0 else "no significant change"
    gained, lost = sum(y and not x for x, y in zip(b, t)), sum(x and not y for x, y in zip(b, t))
    return (f"change {100 * d['delta']:+.1f} points ({gained} questions gained, {lost} lost; paired bootstrap over "
            f"the same {d['n']} questions, 95% CI {100 * lo:+.1f} to {100 * hi:+.1f}: {verdict})")


def fmt_means(means: dict) -> str:
    return ", ".join(f"{k}={v:.2f}" for k, v in means.items() if v is not None) or "n/a"
