"""The numbers behind every plot and table of ``tao report``: pure functions of a run's rows and summaries.

Nothing here draws or formats HTML (that is :mod:`opentao.report.plots` and :mod:`opentao.report.page`), so the
tests check each figure's data against hand-computed values. Inputs are the rows of the run's tables as dicts
(as :meth:`opentao.store.RunStore.read` returns them) and the JSON summaries under ``RUN/summary``.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.store import TABLES, RunStore


@dataclass
class RunData:
    """Everything a report reads from one run directory (read once)."""

    root: Path
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_logs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.root.name


def load_run(run_dir: str | Path) -> RunData:
    store = RunStore(run_dir)
    data = RunData(store.root, {t: store.read(t) for t in TABLES})
    for path in sorted((store.root / "summary").glob("*.json")):
        try:
            data.summaries[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    for state in sorted((store.root / "train").glob("round-*/checkpoint-*/trainer_state.json")):
        try:
            round_ = int(state.parent.parent.name.split("-")[1])
            data.checkpoint_logs[round_] = json.loads(state.read_text()).get("log_history", [])
        except (OSError, ValueError, IndexError):
            continue
    return data


# --- scores --------------------------------------------------------------------------------------------------
def score_distributions(scores: list[dict[str, Any]], bins: int = 10) -> dict[str, dict[str, Any]]:
    """Per scorer (``combined`` last): the scored values' histogram over ``bins`` equal bins spanning the
    scorer's own [min, max] (one bin when every value is equal), the mean, and the abstentions."""
    by: dict[str, list[float | None]] = defaultdict(list)
    for r in scores:
        by[r["scorer"]].append(r["score"])
    out = {}
    for name in sorted(by, key=lambda n: (n == "combined", n)):
        vals = [v for v in by[name] if v is not None and not math.isnan(v)]
        entry: dict[str, Any] = {"n": len(vals), "abstained": len(by[name]) - len(vals),
                                 "mean": sum(vals) / len(vals) if vals else None, "edges": [], "counts": []}
        if vals:
            lo, hi = min(vals), max(vals)
            k = bins if hi > lo else 1
            width = (hi - lo) / k if hi > lo else 1.0
            counts = [0] * k
            for v in vals:
                counts[min(int((v - lo) / width), k - 1)] += 1
            entry["edges"] = [lo + i * width for i in range(k + 1)] if hi > lo else [lo, lo]
            entry["counts"] = counts
        out[name] = entry
    return out


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation; None with fewer than two pairs or a constant side."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)


def scorer_agreement(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Pairwise Pearson correlation of the scorers' scores over the candidates both scored (``combined`` last).

    Returns ``{"scorers": [...], "matrix": [[r | None]], "pairs": [[n]]}``; None where it is undefined.
    """
    per: dict[str, dict[tuple, float]] = defaultdict(dict)
    for r in scores:
        if r["score"] is not None and not math.isnan(r["score"]):
            per[r["scorer"]][(r.get("round"), r["candidate_id"])] = r["score"]
    names = sorted({r["scorer"] for r in scores}, key=lambda n: (n == "combined", n))
    matrix, pairs = [], []
    for a in names:
        row, nrow = [], []
        for b in names:
            common = sorted(set(per[a]) & set(per[b]))
            nrow.append(len(common))
            row.append(pearson([per[a][c] for c in common], [per[b][c] for c in common]))
        matrix.append(row)
        pairs.append(nrow)
    return {"scorers": names, "matrix": matrix, "pairs": pairs}


# --- held-out metric, rounds, K -----------------------------------------------------------------------------
def heldout_metrics(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Base and each round's held-out accuracy with its 95% CI, from ``summary/eval-r<N>-<label>.json``,
    ordered by round."""
    out = []
    for name, s in summaries.items():
        if not name.startswith("eval-r") or "accuracy" not in s:
            continue
        try:
            round_ = int(name[len("eval-r"):].split("-", 1)[0])
        except ValueError:
            continue
        lo, hi = s.get("ci95") or (None, None)
        out.append({"round": round_, "label": s.get("model", name), "accuracy": s["accuracy"], "lo": lo, "hi": hi,
                    "n": s.get("n"), "correct": s.get("correct"), "task": s.get("task")})
    return sorted(out, key=lambda e: (e["round"], e["label"]))


def reward_by_round(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean combined reward of each round's candidates and the share of groups with a zero-variance reward."""
    by: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in scores:
        if r["scorer"] == "combined" and r["score"] is not None:
            by[r["round"]][r["prompt_id"]].append(r["score"])
    out = []
    for round_, groups in sorted(by.items()):
        vals = [v for g in groups.values() for v in g]
        flat = sum(1 for g in groups.values() if max(g) == min(g))
        out.append({"round": round_, "mean_reward": sum(vals) / len(vals), "groups": len(groups),
                    "flat_share": flat / len(groups)})
    return out


def _slot(candidate_id: str) -> int:
    tail = candidate_id.rpartition("#")[2]
    return int(tail) if tail.isdigit() else 0


def best_of_k_curve(scores: list[dict[str, Any]], round_: int | None = None) -> list[dict[str, Any]]:
    """Label-free quality vs K: for k = 1..K, the mean over prompts of the best combined reward among each
    group's first k candidates (by slot), and the share of groups whose first k have any spread (signal)."""
    groups: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for r in scores:
        if r["scorer"] == "combined" and r["score"] is not None and (round_ is None or r["round"] == round_):
            groups[(r["round"], r["prompt_id"])].append((_slot(r["candidate_id"]), r["score"]))
    if not groups:
        return []
    kmax = max(len(g) for g in groups.values())
    out = []
    for k in range(1, kmax + 1):
        firsts = [[s for _, s in sorted(g)[:k]] for g in groups.values()]
        out.append({"k": k, "best_reward": sum(max(f) for f in firsts) / len(firsts),
                    "signal_share": sum(1 for f in firsts if max(f) > min(f)) / len(firsts)})
    return out


# --- training ------------------------------------------------------------------------------------------------
def training_curves(run: RunData) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Per round: each numeric logged series (loss, learning_rate, grad_norm, rewards/...) as (step, value).

    From the trainer's log history in ``summary/train-r<N>.json``, else from the last checkpoint's
    ``trainer_state.json`` (runs trained before the summary kept it). The final summary entry (``train_loss``,
    runtime) is left out.
    """
    out: dict[int, dict[str, list[tuple[int, float]]]] = {}
    rounds = {int(n[len("train-r"):]): s.get("log_history") for n, s in run.summaries.items()
              if n.startswith("train-r") and n[len("train-r"):].isdigit()}
    for round_ in sorted(set(rounds) | set(run.checkpoint_logs)):
        history = rounds.get(round_) or run.checkpoint_logs.get(round_) or []
        series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for entry in history:
            if "train_runtime" in entry or "step" not in entry:
                continue
            for key, v in entry.items():
                if key not in ("step", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    series[key].append((int(entry["step"]), float(v)))
        if series:
            out[round_] = dict(series)
    return out


# --- collapse telemetry ----------------------------------------------------------------------------------------
def answer_stats(answers: list[str], top: int = 5) -> dict[str, Any]:
    """Entropy (bits) of the answer distribution, the most common answer's share, and the ``top`` classes'
    shares (the rest summed as ``(other)``). Empty answers count as the class ``(none)``."""
    counts = Counter(a.strip() or "(none)" for a in answers)
    n = sum(counts.values())
    if not n:
        return {"n": 0, "entropy_bits": None, "top_share": None, "classes": []}
    entropy = abs(-sum(c / n * math.log2(c / n) for c in counts.values()))  # abs: no "-0.0"
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    classes = [(a, c / n) for a, c in ranked[:top]]
    rest = sum(c for _, c in ranked[top:])
    if rest:
        classes.append(("(other)", rest / n))
    return {"n": n, "distinct": len(counts), "entropy_bits": entropy, "top_share": ranked[0][1] / n,
            "classes": classes}


def collapse_telemetry(candidates: list[dict[str, Any]], eval_results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round: :func:`answer_stats` of the sampled candidates' answers, and of each evaluated model's held-out
    answers (round 0 is the base). A model collapsing to one answer shows falling entropy and a rising top share."""
    rows = []
    by_round: dict[int, list[str]] = defaultdict(list)
    for c in candidates:
        by_round[c["round"]].append(c.get("answer") or "")
    for round_, answers in sorted(by_round.items()):
        rows.append({"round": round_, "source": "candidates", **answer_stats(answers)})
    by_model: dict[tuple[int, str], list[str]] = defaultdict(list)
    for e in eval_results:
        by_model[(e["round"], e["model"])].append(" ".join((e.get("prediction") or "").split()).lower())
    for (round_, model), answers in sorted(by_model.items()):
        rows.append({"round": round_, "source": f"eval {model}", **answer_stats(answers)})
    return rows


# --- candidates ------------------------------------------------------------------------------------------------
def best_and_worst(candidates: list[dict[str, Any]], scores: list[dict[str, Any]], *, prompts: int = 3,
                   n: int = 5) -> list[dict[str, Any]]:
    """The ``prompts`` groups with the widest combined-reward spread (ties: prompt id) of the last round, each
    with its ``n`` best candidates and its ``n`` worst among the rest (so a group of K < 2n is not shown twice)."""
    if not candidates:
        return []
    last = max(c["round"] for c in candidates)
    reward = {r["candidate_id"]: r["score"] for r in scores if r["scorer"] == "combined" and r["round"] == last}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in candidates:
        if c["round"] == last:
            groups[c["prompt_id"]].append({**c, "reward": reward.get(c["candidate_id"])})

    def key(c):  # abstained (None) ranks below every score
        return (c["reward"] is not None, c["reward"] if c["reward"] is not None else 0.0)

    def spread(g):
        vals = [c["reward"] for c in g if c["reward"] is not None]
        return max(vals) - min(vals) if vals else -1.0

    chosen = sorted(groups, key=lambda pid: (-spread(groups[pid]), pid))[:prompts]
    out = []
    for pid in chosen:
        ranked = sorted(groups[pid], key=lambda c: (key(c), -_slot(c["candidate_id"])), reverse=True)
        best = ranked[:n]
        worst = list(reversed(ranked[n:]))[:n]
        out.append({"round": last, "prompt_id": pid, "spread": spread(groups[pid]), "best": best, "worst": worst})
    return out


# --- cost ------------------------------------------------------------------------------------------------------
def cost(run: RunData) -> dict[str, Any]:
    """Tokens generated (candidates and eval answers), wall time per stage from ``summary/run.json`` and the
    generation throughput (candidate tokens / generate seconds) of each round."""
    gen_tokens: dict[int, int] = defaultdict(int)
    for c in run.tables.get("candidates", []):
        gen_tokens[c["round"]] += int(c.get("num_tokens") or 0)
    eval_tokens = sum(int(e.get("num_tokens") or 0) for e in run.tables.get("eval_results", []))
    summary = run.summaries.get("run") or {}
    stages = []
    if (summary.get("base") or {}).get("wall_s") is not None:
        stages.append({"round": 0, "stage": "eval base", "wall_s": summary["base"]["wall_s"]})
    per_round = []
    for r in summary.get("rounds", []):
        for stage in ("generate", "score", "train", "eval"):
            s = r.get(stage) or {}
            if s.get("wall_s") is not None:
                stages.append({"round": r["round"], "stage": stage, "wall_s": s["wall_s"]})
        g = (r.get("generate") or {}).get("wall_s")
        toks = gen_tokens.get(r["round"], 0)
        per_round.append({"round": r["round"], "tokens": toks, "generate_s": g,
                          "tokens_per_s": toks / g if g else None})
    if not per_round:
        per_round = [{"round": k, "tokens": v, "generate_s": None, "tokens_per_s": None}
                     for k, v in sorted(gen_tokens.items())]
    return {"candidate_tokens": sum(gen_tokens.values()), "eval_tokens": eval_tokens, "stages": stages,
            "rounds": per_round, "total_wall_s": summary.get("wall_s")}
