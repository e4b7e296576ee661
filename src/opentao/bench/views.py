"""Reading the benchmark's result files: which file is an arm's at a task and seed, its difference to the base,
the compute-scaling settings, the tasks measured. Pure functions over the loaded JSON (the report and the targets
read through them).

Result names: ``<task>-base``, ``<task>-sft``, ``<task>-tao``, ``<task>-oracle``, ``multitask``, and the
compute-scaling settings ``<task>-tao-k<K>`` (other K, round 1) and ``<task>-tao-r<R>`` (default K, rounds 2..).
"""

from __future__ import annotations

from opentao.bench.stats import aligned, aligned_seeds, paired_bootstrap, pooled_paired_bootstrap
from opentao.tasks import TASKS as _REGISTRY

__all__ = ["ARMS", "ARM_TITLES", "TASKS", "TASK_TITLES", "arm_data", "arm_eval", "mean", "measured", "pct", "points",
           "pooled_vs_base", "scaling_points", "seed_runs", "untrained", "vs_base"]

TASKS = tuple(_REGISTRY)  # the registered tasks, in registry order
ARMS = ("base", "sft", "tao", "oracle", "multitask")
ARM_TITLES = {"base": "base", "sft": "labeled SFT", "tao": "TAO (no labels)", "oracle": "RL, gold reward (oracle)",
              "multitask": "multi-task TAO"}
TASK_TITLES = {name: task.title or name for name, task in _REGISTRY.items()}


def arm_data(results: dict[str, dict], task: str, arm: str) -> dict | None:
    return results.get("multitask" if arm == "multitask" else f"{task}-{arm}")


def its_arm(params: dict) -> str:
    """The arm a tried variant is compared with: its ``vs``, else the arm it varies (``from``, default ``tao``)."""
    return params.get("vs", params.get("from", "tao"))


def arm_eval(results: dict[str, dict], task: str, arm: str) -> dict | None:
    return (arm_data(results, task, arm) or {}).get("evals", {}).get(task)


def untrained(data: dict | None) -> bool:
    """The arm had no training example (nothing passed its reward threshold), so its model is the base."""
    return bool(data and (data.get("train") or {}).get("skipped"))


def vs_base(results: dict[str, dict], task: str, ev: dict, seed: int = 0) -> dict | None:
    base = arm_eval(results, task, "base")
    if base is None or ev is None or ev is base:
        return None
    b, a = aligned(base["per_example"], ev["per_example"])
    return paired_bootstrap(b, a, seed=seed)


def _name(task: str, arm: str) -> str:
    return "multitask" if arm == "multitask" else f"{task}-{arm}"


def seed_runs(results: dict[str, dict], by_seed: dict[str, dict[int, dict]] | None, task: str,
              arm: str) -> list[dict]:
    """The arm's result files that evaluated ``task``, one per seed (seeds ascending); without ``by_seed`` just the
    seed-0 file of ``results``."""
    runs = (by_seed or {}).get(_name(task, arm)) or {0: arm_data(results, task, arm)}
    return [d for _, d in sorted(runs.items()) if d and task in d.get("evals", {})]


def pooled_vs_base(results: dict[str, dict], task: str, evals: list[dict], seed: int = 0) -> dict | None:
    """The seeds' evals of one arm against the (one, seed-invariant) base eval: the pooled paired bootstrap; one
    seed gives :func:`vs_base`'s numbers exactly. None without a base, or for the base itself."""
    base = arm_eval(results, task, "base")
    if base is None or not evals or any(ev is base for ev in evals):
        return None
    _, b, arms = aligned_seeds(base["per_example"], [ev["per_example"] for ev in evals])
    return pooled_paired_bootstrap([b] * len(arms), arms, seed=seed)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def pct(x: float | None) -> str:
    """A share in percent with one decimal, — for None."""
    return "—" if x is None else f"{100 * x:.1f}"


def points(d: dict) -> str:
    """A bootstrap result ``{"delta", "ci95"}`` in points: ``+3.3 [+0.8, +6.7]``."""
    return f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"


def scaling_points(results: dict[str, dict], task: str) -> list[dict]:
    """Every TAO setting of a task: ``{"k", "rounds", "accuracy", "name"}`` sorted by (rounds, k)."""
    pts = []
    for name, data in results.items():
        if not name.startswith(f"{task}-tao") or task not in data.get("evals", {}):
            continue
        p = data.get("params", {})
        pts.append({"name": name, "k": p.get("k"), "rounds": p.get("rounds", 1),
                    "accuracy": data["evals"][task]["accuracy"]})
    return sorted(pts, key=lambda x: (x["rounds"], x["k"] or 0))


def measured(results: dict[str, dict]) -> tuple[str, ...]:
    """The registered tasks that some result evaluates, in registry order: a task no arm has run yet (a newly
    added one) stays out of the tables, targets and plots instead of filling them with empty rows."""
    seen = {t for data in results.values() for t in data.get("evals", {})}
    return tuple(t for t in TASKS if t in seen)
