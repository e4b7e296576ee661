"""Why an arm scored what it did: answer-level diagnostics of held-out predictions (pure functions, no I/O).

Accuracy alone hides two failure modes that matter for a label-free method:

* **collapse to a constant answer** (docqa) — a model that answers "yes" to every BoolQ question scores the
  share of "yes" questions without reading the passage. Self-consistency rewards are known to amplify the
  model's own bias this way (the TTRL paper's caveat). :func:`docqa_diagnostics` reports per-kind accuracy, how
  often the yes/no answers are strict one-word answers, the share of them that are "yes", and the accuracy of the
  two constant answers on the same examples; :func:`docqa_correctness` the balanced yes/no accuracy (mean recall
  of the two classes), which no constant answer lifts above 50%.
* **lost skills on held-out constraint types** (instruct) — training on seen constraint types can unlearn the
  held-out ones. :func:`instruct_diagnostics` reports the pass rate of every constraint type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def _rate(k: float, n: int) -> float | None:
    return k / n if n else None


def docqa_correctness(pairs: Iterable[tuple[dict, bool]]) -> dict:
    """``pairs``: (gold row ``{"kind", "answer"}``, graded correct). Needs no prediction text, so it also runs on
    an arm's saved per-example correctness: per-kind accuracy, the recall of each yes/no class and their mean, the
    **balanced yes/no accuracy** — 50% for any constant answer, whatever the test split's share of *yes*."""
    n, correct, n_cls, hit_cls = Counter(), Counter(), Counter(), Counter()
    for row, ok in pairs:
        n[row["kind"]] += 1
        correct[row["kind"]] += bool(ok)
        if row["kind"] == "yesno":
            n_cls[row["answer"]] += 1
            hit_cls[row["answer"]] += bool(ok)
    recall = {c: _rate(hit_cls[c], n_cls[c]) for c in ("yes", "no")}
    both = [r for r in recall.values() if r is not None]
    return {"n": dict(n), "accuracy_by_kind": {k: _rate(correct[k], n[k]) for k in sorted(n)},
            "yesno_classes": {c: n_cls[c] for c in ("yes", "no")}, "yesno_recall": recall,
            "yesno_balanced_accuracy": sum(both) / 2 if len(both) == 2 else None}


def one_constant(yes_share: float | None, tol: float = 0.05) -> str | None:
    """``"yes"`` / ``"no"`` when the bare yes/no answers are (almost) all that word — a *yes* share within ``tol``
    of 1 or 0 — else None (also when there is no share)."""
    if yes_share is None:
        return None
    return "yes" if yes_share >= 1 - tol else "no" if yes_share <= tol else None


def docqa_diagnostics(pairs: Iterable[tuple[dict, str]]) -> dict:
    """``pairs``: (gold row ``{"kind", "answer"}``, prediction). Shares are in [0, 1], None when undefined."""
    from opentao.tasks.docqa import grade, is_strict_yes_no, yes_no

    graded, said, strict = [], Counter(), 0
    gold_yes = 0
    for row, pred in pairs:
        graded.append((row, grade(row, pred)[0]))
        if row["kind"] == "yesno":
            gold_yes += row["answer"] == "yes"
            strict += is_strict_yes_no(pred)
            said[yes_no(pred) or "neither"] += 1
    out = docqa_correctness(graded)
    n_yesno, total = out["n"].get("yesno", 0), len(graded)
    return {
        **out,
        "yesno_strict_share": _rate(strict, n_yesno),
        "yesno_answers": {k: said[k] for k in ("yes", "no", "neither")},
        "yesno_yes_share": _rate(said["yes"], said["yes"] + said["no"]),
        # accuracy over *all* examples of answering a constant to every yes/no question (spans then score 0)
        "always_yes_accuracy": _rate(gold_yes, total),
        "always_no_accuracy": _rate(n_yesno - gold_yes, total),
    }


def instruct_diagnostics(pairs: Iterable[tuple[dict, str]]) -> dict:
    """``pairs``: (gold row ``{"constraints": [...]}``, prediction) → pass rate per constraint type, and how often
    every constraint passed but the relevance check failed."""
    from opentao.tasks.instruct import check, grade

    seen, passed = Counter(), Counter()
    all_pass_irrelevant = 0
    n = 0
    for row, pred in pairs:
        n += 1
        oks = []
        for c in row["constraints"]:
            ok = check(c, pred)
            seen[c["type"]] += 1
            passed[c["type"]] += ok
            oks.append(ok)
        if all(oks) and not grade(row, pred)[0]:
            all_pass_irrelevant += 1
    return {"n": n, "pass_rate": {t: _rate(passed[t], seen[t]) for t in sorted(seen)}, "count": dict(seen),
            "all_constraints_pass_but_irrelevant": all_pass_irrelevant}


DIAGNOSTICS = {"docqa": docqa_diagnostics, "instruct": instruct_diagnostics}
