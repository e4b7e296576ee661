"""The benchmark's targets (issue 14), computed only from the saved per-arm JSON files and the answer-level
diagnostics (``results/diagnostics-<mode>.json``, :func:`opentao.bench.table.diagnose`).

**Metric per task** (:func:`metric_name`): held-out accuracy, except **docqa**, whose targets use its *balanced*
yes/no accuracy — the mean recall of the *yes* and the *no* questions, 50 for any constant answer — because its
plain accuracy pays a model for answering *yes* to every question. docqa's balanced numbers need the diagnostics
(the per-example yes/no classes, ``yesno_class_of`` in the base's entry, and each arm's stratified CI vs the base,
pooled over seeds where it has several); without them docqa falls back to accuracy and the row says so.

* **TAO ≥ base + 10 points, CI > 0** — the mean difference over the arm's seeds is ≥ 10 points and its (pooled)
  paired-bootstrap 95% CI lies above zero.
* **TAO ≥ labeled SFT**, **TAO ≥ 80% of the oracle's gain** — mean over seeds (undefined when the oracle gained
  nothing); **tuned length ≤ 1.1× base** (mean new tokens).
* **Quality non-decreasing in K, and in rounds** — on ≥ 2 tasks: no step to the next budget is a drop whose paired
  CI lies below zero (*within CI*), and the largest budget scores highest (point estimates); a curve is read at the
  seeds all its points ran (seed 0 alone unless every point has more), each point the mean over them.
* **No tuned arm answers one constant** — docqa, the task with a categorical answer: no arm but the base has a
  *yes* share of its bare yes/no answers within 5 points of 0 or 100%.
"""

from __future__ import annotations

from typing import Any

from opentao.bench.stats import pooled_paired_bootstrap, pooled_paired_bootstrap_balanced
from opentao.bench.diagnose import docqa_correctness, one_constant
from opentao.bench.views import arm_eval, measured, pooled_vs_base, scaling_points, seed_runs
from opentao.bench.views import mean as _mean
from opentao.bench.views import pct as _pct
from opentao.bench.views import points as _pts

__all__ = ["metric_name", "targets"]

def _classes(diag: dict[str, dict] | None) -> dict[str, str] | None:
    """docqa's ``{example id: "yes" | "no"}`` of the yes/no test questions, kept in the base's diagnostics."""
    return ((diag or {}).get("docqa-base") or {}).get("docqa", {}).get("yesno_class_of") or None


def metric_name(task: str, diag: dict[str, dict] | None) -> str:
    return "balanced yes/no accuracy" if task == "docqa" and _classes(diag) else "accuracy"


def balanced(per_example: dict, classes: dict[str, str]) -> float | None:
    """The balanced yes/no accuracy (:func:`opentao.bench.diagnose.docqa_correctness`) of the examples of
    ``per_example`` that have a class."""
    return docqa_correctness(({"kind": "yesno", "answer": classes[i]}, ok)
                             for i, ok in zip(per_example["ids"], per_example["correct"]) if i in classes
                             )["yesno_balanced_accuracy"]


class Scores:
    """An arm's value of its task's metric, and its difference to the base with the (pooled) CI."""

    def __init__(self, results: dict[str, dict], by_seed: dict[str, dict[int, dict]] | None,
                 diag: dict[str, dict] | None) -> None:
        self.results, self.by_seed, self.diag = results, by_seed, diag

    def runs(self, task: str, arm: str) -> list[dict]:
        return seed_runs(self.results, self.by_seed, task, arm)

    def arm(self, task: str, arm: str) -> dict[str, Any] | None:
        """``{"value", "delta", "ci95", "seeds"}`` (delta/ci95 None for the base); None when the arm has not run."""
        runs = self.runs(task, arm)
        if not runs:
            return None
        classes = _classes(self.diag) if task == "docqa" else None
        if classes is None:
            evs = [d["evals"][task] for d in runs]
            d = pooled_vs_base(self.results, task, evs) if arm != "base" else None
            return {"value": _mean([ev["accuracy"] for ev in evs]), "delta": d and d["delta"],
                    "ci95": d and d["ci95"], "seeds": len(runs)}
        values = [balanced(d["evals"][task]["per_example"], classes) for d in runs]
        if any(v is None for v in values):
            return None
        if arm == "base":
            return {"value": values[0], "delta": None, "ci95": None, "seeds": 1}
        entry = (self.diag or {}).get(f"{task}-{arm}", {}).get(task, {})
        d = entry.get("yesno_balanced_vs_base_pooled") if len(runs) > 1 else entry.get("yesno_balanced_vs_base")
        return {"value": _mean(values), "delta": d["delta"] if d else None, "ci95": d["ci95"] if d else None,
                "seeds": len(runs)}

    def seed_evals(self, task: str, name: str) -> dict[int, dict]:
        """A setting's evals of ``task`` by seed (seed 0's from ``results``, the others' from ``by_seed``)."""
        runs = {0: self.results.get(name), **((self.by_seed or {}).get(name) or {})}
        return {s: d["evals"][task] for s, d in sorted(runs.items()) if d and task in d.get("evals", {})}

    def point(self, task: str, name: str, seeds: tuple[int, ...] = (0,)) -> float | None:
        """The setting's value of the task's metric, the mean over ``seeds``."""
        evs = self.seed_evals(task, name)
        classes = _classes(self.diag) if task == "docqa" else None
        values = [balanced(evs[s]["per_example"], classes) if classes else evs[s]["accuracy"] for s in seeds]
        return None if any(v is None for v in values) else _mean(values)

    def step(self, task: str, a: str, b: str, seeds: tuple[int, ...] = (0,)) -> dict:
        """Setting ``b`` minus setting ``a`` on the task's metric, paired per seed on the examples both answered,
        pooled over ``seeds`` (:func:`pooled_paired_bootstrap`; one seed: the plain paired bootstrap's numbers)."""
        ea, eb = self.seed_evals(task, a), self.seed_evals(task, b)
        classes = _classes(self.diag) if task == "docqa" else None
        maps = [(dict(zip(ea[s]["per_example"]["ids"], ea[s]["per_example"]["correct"])),
                 dict(zip(eb[s]["per_example"]["ids"], eb[s]["per_example"]["correct"]))) for s in seeds]
        first = ea[seeds[0]]["per_example"]["ids"]
        common = [i for i in first if all(i in x and i in y for x, y in maps) and (not classes or i in classes)]
        xs, ys = [[x[i] for i in common] for x, _ in maps], [[y[i] for i in common] for _, y in maps]
        if not classes:
            return pooled_paired_bootstrap(xs, ys)
        return pooled_paired_bootstrap_balanced(xs, ys, [classes[i] for i in common])

    def shared_seeds(self, task: str, names: list[str]) -> tuple[int, ...]:
        """The seeds at which every one of ``names`` evaluated ``task`` (at least seed 0 in a finished curve)."""
        common = set.intersection(*(set(self.seed_evals(task, n)) for n in names))
        return tuple(sorted(common)) or (0,)


def _curve(sc: Scores, task: str, points: list[dict]) -> tuple[bool, str]:
    """(non-decreasing within CI and highest at the largest budget, the detail text) over ``points`` in budget
    order, read at the seeds every point has (seed 0 alone when one point has no other): each point the mean over
    them, each step their pooled paired bootstrap."""
    seeds = sc.shared_seeds(task, [p["name"] for p in points])
    values = [sc.point(task, p["name"], seeds) for p in points]
    steps = [sc.step(task, a["name"], b["name"], seeds) for a, b in zip(points, points[1:])]
    no_drop = all(s["ci95"][1] >= 0 for s in steps)
    top = values[-1] is not None and all(v is not None and values[-1] >= v for v in values[:-1]) \
        and values[-1] > values[0]
    text = " → ".join(_pct(v) for v in values)
    drops = [f"{_pct(values[j])}→{_pct(values[j + 1])} {_pts(s)}" for j, s in enumerate(steps) if s["ci95"][1] < 0]
    over = f" ({len(seeds)} seeds)" if len(seeds) > 1 else ""
    return no_drop and top, f"{task}: {text}{over}" + (f" (drop beyond CI: {'; '.join(drops)})" if drops else "")


def targets(results: dict[str, dict], by_seed: dict[str, dict[int, dict]] | None = None,
            diag: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """Each target of the module doc with ``met`` True / False / None (None: the arms it needs are not finished,
    or it is undefined); ``diag``: the mode's diagnostics keyed by arm name without the mode prefix."""
    sc = Scores(results, by_seed, diag)
    out: list[dict[str, Any]] = []
    for task in measured(results):
        metric = metric_name(task, diag)
        base, tao, sft, oracle = (sc.arm(task, a) for a in ("base", "tao", "sft", "oracle"))
        seeds = f", {tao['seeds']} seeds" if tao and tao["seeds"] > 1 else ""
        if base and tao and tao["delta"] is not None:
            met = tao["delta"] >= 0.10 and tao["ci95"][0] > 0
            detail = f"{metric}: base {_pct(base['value'])}, TAO {_pct(tao['value'])} ({_pts(tao)}{seeds})"
        else:
            met, detail = None, "arms missing"
        out.append({"target": "TAO ≥ base + 10 points, CI > 0", "task": task, "met": met, "detail": detail})
        out.append({"target": "TAO ≥ labeled SFT", "task": task,
                    "met": (tao["value"] >= sft["value"]) if tao and sft else None,
                    "detail": f"{metric}: SFT {_pct(sft and sft['value'])}, TAO {_pct(tao and tao['value'])}"})
        if base and tao and oracle:
            gain, ogain = tao["value"] - base["value"], oracle["value"] - base["value"]
            met = gain >= 0.8 * ogain if ogain > 0 else None  # no oracle gain: the share is undefined
            share = f"{100 * gain / ogain:.0f}% of the oracle's gain" if ogain > 0 else "the oracle gained nothing"
        else:
            met, share = None, "arms missing"
        out.append({"target": "TAO recovers ≥ 80% of the oracle's gain", "task": task, "met": met,
                    "detail": f"{metric}: oracle {_pct(oracle and oracle['value'])}; {share}"})
        base_ev, tao_evs = arm_eval(results, task, "base"), [d["evals"][task] for d in sc.runs(task, "tao")]
        if base_ev and tao_evs:
            tao_tokens = _mean([ev["mean_new_tokens"] for ev in tao_evs])
            ratio = tao_tokens / max(base_ev["mean_new_tokens"], 1e-9)
            out.append({"target": "tuned mean response length ≤ 1.1× base", "task": task, "met": ratio <= 1.1,
                        "detail": f"{tao_tokens:.1f} vs {base_ev['mean_new_tokens']:.1f} tokens ({ratio:.2f}×)"})
        else:
            out.append({"target": "tuned mean response length ≤ 1.1× base", "task": task, "met": None,
                        "detail": "arms missing"})
    for what, pick in (("K", lambda pts, k0: sorted((p for p in pts if p["rounds"] == 1 and p["k"]),
                                                     key=lambda p: p["k"])),
                       ("rounds", lambda pts, k0: sorted((p for p in pts if p["k"] == k0), key=lambda p: p["rounds"]))):
        curves = []
        for task in measured(results):
            k0 = (results.get(f"{task}-tao") or {}).get("params", {}).get("k")
            pts = pick(scaling_points(results, task), k0)
            if len(pts) >= 2:
                curves.append((task, *_curve(sc, task, pts)))
        ok = [t for t, m, _ in curves if m]
        # a flat curve (e.g. 0 → 0) does not count: the target asks that more compute buys quality
        out.append({"target": f"quality non-decreasing in {what} (within CI) and highest at the largest, "
                              "on ≥ 2 tasks", "task": "all", "met": (len(ok) >= 2) if len(curves) >= 2 else None,
                    "detail": "; ".join(d for _, _, d in curves) or "scaling runs missing"})
    docqa = {name.removeprefix("docqa-"): e["docqa"] for name, e in (diag or {}).items()
             if "docqa" in e and name != "docqa-base" and e["docqa"].get("yesno_yes_share") is not None}
    const = sorted(n for n, d in docqa.items() if one_constant(d["yesno_yes_share"]))
    out.append({"target": "no tuned arm answers one constant (docqa yes/no)", "task": "docqa",
                "met": (not const) if docqa else None,
                "detail": (f"one constant: {', '.join(const)}" if const else f"none of {len(docqa)} arms")
                if docqa else "no answers measured"})
    return out
