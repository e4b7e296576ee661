#!/usr/bin/env python
"""Reproduce the shape of TAO's Table 3 and Figure 3 (Databricks 2025) on CPU, on three tasks.

Arms, all from the same base model (bundled SmolLM2-135M-Instruct) and, where it applies, the same number of
optimizer steps on the same training prompts:

1. ``base``      — the untuned model;
2. ``sft``       — labeled SFT: the training prompts with their **gold** outputs (the paper's fine-tuning arm);
3. ``tao``       — TAO from the prompts only: K samples per prompt, label-free task reward, best-of-K SFT
                   (``rft``, our best default objective), LoRA merged back;
4. ``oracle``    — the same samples and steps as TAO, but candidates chosen by **gold** correctness (RL with the
                   gold reward in its rejection-sampling form: an upper bound on what TAO's scorer could pick);
5. ``multitask`` — one TAO model tuned on the union of the three tasks' examples (the sum of their steps),
                   evaluated on each task.

Compute scaling: TAO with K ∈ {2, 4, 8, 16} (round 1; the K samples are the first K slots of one pool of
``max(K)`` samples per prompt, so a larger K sees a superset) and rounds 2.. at the default K (round r samples
from and trains the round r-1 model).

Every finished arm is saved at once as ``benchmarks/results/<mode>-<arm>.json`` and skipped on a rerun;
intermediate work (samples, checkpoints, merged models, eval answers) lives in ``benchmarks/runs/`` (not
committed) and resumes too. ``--render`` only rebuilds ``benchmarks/README.md`` and the plots from the JSON.

Simplifications (see README): the oracle arm is rejection sampling with the gold reward, not PPO/GRPO; one
seed; prompts are short (passages cut to ~120 words) to fit 2 CPU cores.

Usage::

    PYTHONPATH=src python benchmarks/tao_table.py --quick      # ≤ 20 min spot check
    PYTHONPATH=src python benchmarks/tao_table.py              # full run (≈ 3 h, resumable, run it repeatedly)
    PYTHONPATH=src python benchmarks/tao_table.py --tried      # variants tried for the missed targets (TRIED)
    PYTHONPATH=src python benchmarks/tao_table.py --diagnose   # answer diagnostics from the cached eval answers
    PYTHONPATH=src python benchmarks/tao_table.py --render     # README + plots from the saved JSON only
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from opentao.bench import report
from opentao.bench.results import ArmSpec, ResultDir, run_arms
from opentao.config import GenerateConfig, TrainConfig
from opentao.data import load_prompts, read_table_rows
from opentao.records import Candidate, Prompt, TrainExample

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = HERE / "runs"
SEED = 0

# Per-mode sizes. steps = optimizer steps (of `batch` examples) for every single-task trained arm; multitask gets
# the sum of the tasks' steps.
SIZES: dict[str, dict[str, Any]] = {
    "quick": dict(n_train=8, n_test=16, k=4, k_scale=(2, 4), scale_tasks=("docqa", "sql"), rounds=1, steps=2,
                  batch=4, tasks=("sql", "docqa", "instruct")),
    "full": dict(n_train=64, n_test=120, k=4, k_scale=(2, 4, 8, 16), scale_tasks=("docqa", "instruct"), rounds=3,
                 steps=16, batch=8, tasks=("sql", "docqa", "instruct")),
}

SQL_STOP = [";", "\n\n", "\n```"]
# Task settings: how TAO explores (generate), its label-free reward (scorers), the rft threshold, eval decoding.
TASKS: dict[str, dict[str, Any]] = {
    "sql": dict(
        generate=dict(strategies=["plain", "system"], temperatures=[0.3], max_new_tokens=64, stop=SQL_STOP,
                      extract="sql", system_prompts=[
                          "You are an expert SQLite analyst. Reply with one SQLite query and nothing else. Select "
                          "only the columns the question asks for, never SELECT *. Use only tables and columns "
                          "that appear in the schema."]),
        scorers=[{"type": "sql_exec", "star_score": 0.5}, {"type": "majority_vote", "mode": "sql_result"}],
        threshold=0.75, eval=dict(max_new_tokens=64, stop=SQL_STOP), max_length=640),
    "docqa": dict(
        generate=dict(strategies=["plain", "system"], temperatures=[0.7], max_new_tokens=32, stop=["\n"],
                      extract="none", system_prompts=[
                          "Reply with the answer only: yes or no for a yes/no question, otherwise the exact words "
                          "from the passage. No explanation."]),
        scorers=[{"type": "opentao.tasks.docqa:GroundedScorer", "vote_weight": 0.5}],
        threshold=0.99, eval=dict(max_new_tokens=32, stop=[]), max_length=384),
    "instruct": dict(
        generate=dict(strategies=["plain", "system"], temperatures=[0.7], max_new_tokens=96, stop=[],
                      extract="none", system_prompts=[
                          "Follow every requirement in the request exactly. Keep the answer short."]),
        scorers=[{"type": "opentao.tasks.instruct:ConstraintScorer"}],
        threshold=0.5, eval=dict(max_new_tokens=96, stop=[]), max_length=448),
}

CALIBRATED_VOTE = {"type": "opentao.tasks.docqa:GroundedScorer", "vote_weight": 0.5, "calibrate": True}

# What we tried for the targets the default arms miss (``--tried``, results in ``results/tried-*.json``; not part of
# the ≤ 3 h full plan). Each is one arm of the full plan with one or two knobs changed — the same prompts, sample
# pool and seed — so its difference to that arm is the knob's effect (one seed: read it with the CI). ``vs`` names
# the plan arm to compare with when it is not ``from`` (a K-scaling arm of the same K). (task, variant, changes, why)
TRIED: list[tuple[str, str, dict[str, Any], str]] = [
    ("instruct", "tao-steps4", {"from": "tao", "steps": 4},
     "4 optimizer steps instead of 16 (~0.8 epoch of the 39 kept examples instead of 3.3): overfitting?"),
    ("instruct", "oracle-steps2", {"from": "oracle", "steps": 2},
     "the oracle with 2 steps (~1.5 epochs of its 11 examples instead of 11.6): does the oracle drop too?"),
    ("docqa", "tao-dpo", {"from": "tao", "method": "dpo"},
     "DPO on best-vs-worst pairs instead of best-of-K SFT: learn from the rejected answers too"),
    ("instruct", "tao-dpo", {"from": "tao", "method": "dpo"},
     "DPO on best-vs-worst pairs instead of best-of-K SFT"),
    ("sql", "tao-k16", {"from": "tao", "k": 16},
     "K=16 instead of 4: more prompts with an executing, agreed-on query (6 kept at K=4)"),
    ("docqa", "tao-steps4", {"from": "tao", "steps": 4},
     "4 optimizer steps instead of 16: does less training avoid the collapse to one constant answer?"),
    ("instruct", "tao-thr1", {"from": "tao", "threshold": 1.0},
     "keep only candidates that pass every stated constraint (threshold 1.0 instead of 0.5)"),
    ("instruct", "tao-lr1e-4", {"from": "tao", "lr": 1e-4}, "learning rate 1e-4 instead of 3e-4"),
    ("docqa", "tao-k16-dpo", {"from": "tao", "k": 16, "method": "dpo"},
     "DPO at K=16: does the contrastive loss turn more samples into a gain?"),
    ("sql", "tao-dpo", {"from": "tao", "method": "dpo"}, "DPO on best-vs-worst pairs instead of best-of-K SFT"),
    ("instruct", "tao-n256", {"from": "tao", "n_train": 256},
     "256 training prompts instead of 64 (same 16 steps): prompts are free for TAO, labels are not"),
    ("instruct", "sft-n256", {"from": "sft", "n_train": 256}, "labeled SFT on the same 256 prompts (the fair bar)"),
    ("docqa", "tao-rerun", {"from": "tao"},
     "nothing: the plan's TAO arm rerun on this session's regenerated pool and dtype (the noise floor of Δ vs its arm)"),
    # a batch-calibrated vote against the vote's answer-prior amplification; at K=2-8 it keeps the very same
    # examples as the plain vote on this pool (the model's samples are not skewed), at K=16 it changes some
    ("docqa", "tao-calvote-k16", {"from": "tao", "vs": "tao-k16", "k": 16, "scorers": [CALIBRATED_VOTE]},
     "batch-calibrated yes/no vote (the winner is the answer drawn most often relative to the model's prior over the "
     "round) instead of the plain plurality, K=16"),
]


def tried_plan() -> list[ArmSpec]:
    return [ArmSpec(f"{task}-{variant}", "tried", (task,), {**changes, "why": why})
            for task, variant, changes, why in TRIED]


log = logging.getLogger("tao_table")


# ------------------------------------------------------------------------------------------------ the plan


def plan(mode: str) -> list[ArmSpec]:
    s = SIZES[mode]
    specs: list[ArmSpec] = []
    for task in s["tasks"]:
        for arm in ("base", "sft", "tao", "oracle"):
            specs.append(ArmSpec(f"{task}-{arm}", arm, (task,), {"k": s["k"], "rounds": 1} if arm == "tao" else {}))
    specs.append(ArmSpec("multitask", "multitask", tuple(s["tasks"]), {"k": s["k"]}))
    for task in s["scale_tasks"]:
        for k in s["k_scale"]:
            if k != s["k"]:
                specs.append(ArmSpec(f"{task}-tao-k{k}", "scale", (task,), {"k": k, "rounds": 1}))
        for r in range(2, s["rounds"] + 1):
            specs.append(ArmSpec(f"{task}-tao-r{r}", "scale", (task,), {"k": s["k"], "rounds": r}))
    return specs


# ------------------------------------------------------------------------------------------- the runner


class Bench:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.s = SIZES[mode]
        self.work = WORK / mode
        self.k_pool = max(self.s["k"], *self.s["k_scale"])
        self._pools: dict[tuple[str, int, str], dict[str, list[Candidate]]] = {}

    # --- task files -----------------------------------------------------------------------------------
    def task_dir(self, task: str) -> Path:
        from opentao.pipeline import prepare_task

        return prepare_task(task)

    def db(self, task: str) -> str | None:
        return str(self.task_dir(task) / "chinook.sqlite") if task == "sql" else None

    def prompts(self, task: str, n: int | None = None) -> list[Prompt]:
        """The first ``n`` (default: the mode's ``n_train``) training prompts."""
        return load_prompts(self.task_dir(task) / "train.jsonl", round_=1)[: n or self.s["n_train"]]

    def prompt_index(self, task: str) -> dict[str, Prompt]:
        return {p.prompt_id: p for p in load_prompts(self.task_dir(task) / "train.jsonl", round_=1)}

    def gold_rows(self, task: str) -> dict[str, dict]:
        return {str(r["id"]): r for r in read_table_rows(self.task_dir(task) / "train_gold.jsonl")}

    def test_file(self, task: str) -> Path:
        return self.task_dir(task) / "test.jsonl"

    def evaluator(self, task: str):
        from opentao.evaluate.registry import get_evaluator

        return get_evaluator(task, self.db(task))

    # --- samples, rewards, examples -------------------------------------------------------------------
    def pool(self, task: str, model: str, round_: int, tag: str, k: int,
             n: int | None = None) -> dict[str, list[Candidate]]:
        """``k`` candidates for each of the first ``n`` training prompts, sampled from ``model`` (resumable)."""
        from opentao.generate.hf import HFGenerator
        from opentao.generate.stage import run_generate
        from opentao.models import load_model
        from opentao.store import RunStore

        key = (task, round_, tag)
        if key not in self._pools:
            store = RunStore(self.work / task / f"pool-{tag}")
            gcfg = GenerateConfig(k=k, batch_size=32, prompts_per_part=8, **TASKS[task]["generate"])
            prompts = [Prompt(p.prompt_id, p.messages, round_) for p in self.prompts(task, n)]

            def make():
                lm, tok = load_model(model)
                return HFGenerator(lm, tok, batch_size=gcfg.batch_size, top_p=gcfg.top_p)

            t0 = time.time()
            run_generate(store, prompts, gcfg, make, round_=round_, seed=SEED)
            log.info("pool %s/%s ready in %.0f s", task, tag, time.time() - t0)
            groups: dict[str, list[Candidate]] = {}
            for row in store.read("candidates", round_):
                c = Candidate.from_row(row)
                groups.setdefault(c.prompt_id, []).append(c)
            for g in groups.values():
                g.sort(key=lambda c: int(c.candidate_id.rsplit("#", 1)[1]))
            self._pools[key] = groups
        return self._pools[key]

    def tao_rewards(self, task: str, groups: dict[str, list[Candidate]], k: int,
                    scorers: list[dict] | None = None) -> dict[str, float | None]:
        """The label-free combined reward of each of the first ``k`` candidates, scored as a group of ``k``
        (after fitting batch-level scorers on all those groups, as the score stage does)."""
        from opentao.score.registry import build_scorers, fit_scorers, score_group_all
        from opentao.score.stage import with_default_db

        scorers = build_scorers(with_default_db(scorers or TASKS[task]["scorers"], self.db(task)))
        prompts = self.prompt_index(task)
        fit_scorers(scorers, [(prompts[pid], cands[:k]) for pid, cands in groups.items()])
        out: dict[str, float | None] = {}
        for pid, cands in groups.items():
            _, combined = score_group_all(scorers, prompts[pid], cands[:k])
            out.update({c.candidate_id: r for c, r in zip(cands[:k], combined)})
        return out

    def gold_rewards(self, task: str, groups: dict[str, list[Candidate]], k: int) -> dict[str, float]:
        ev, gold = self.evaluator(task), self.gold_rows(task)
        return {c.candidate_id: float(ev.grade(gold[pid], c.response)[0]) for pid, cands in groups.items()
                for c in cands[:k]}

    def examples(self, task: str, groups: dict[str, list[Candidate]], rewards: dict[str, float | None],
                 threshold: float, round_: int, method: str = "rft") -> tuple[list[TrainExample], dict]:
        from opentao.train.examples import build_examples

        prompts = self.prompt_index(task)
        cands = [c for g in groups.values() for c in g if c.candidate_id in rewards]
        ex = build_examples(prompts, cands, rewards, method=method, threshold=threshold, round_=round_)
        # diagnostic only (never used for selection): how many chosen responses are gold-correct
        gold = self.gold_rewards(task, groups, len(next(iter(groups.values()))))
        vals = [r for r in rewards.values() if r is not None]
        sel = {"examples": len(ex), "prompts": len(groups), "candidates": len(cands),
               "mean_reward": sum(vals) / len(vals) if vals else None,
               "gold_correct_share_of_candidates": sum(gold[c.candidate_id] for c in cands) / max(len(cands), 1),
               "gold_correct_share_of_chosen": (sum(gold[e.chosen_id] for e in ex) / len(ex)) if ex else None}
        if task == "docqa":  # is the training set itself skewed to one answer? (diagnostic only)
            from opentao.tasks.docqa import yes_no

            rows = self.gold_rows(task)
            said = [yes_no(e.chosen) for e in ex if rows[e.prompt_id]["kind"] == "yesno"]
            said = [a for a in said if a]
            sel["chosen_yesno"] = len(said)
            sel["chosen_yes_share"] = said.count("yes") / len(said) if said else None
        return ex, sel

    def sft_examples(self, task: str, n: int | None = None) -> list[TrainExample]:
        gold = self.gold_rows(task)
        field = {"sql": "sql", "docqa": "answer", "instruct": "gold"}[task]
        return [TrainExample(p.prompt_id, "sft", p.messages, str(gold[p.prompt_id][field]), round=1)
                for p in self.prompts(task, n)]

    # --- train and eval -------------------------------------------------------------------------------
    def train(self, name: str, base_model: str, examples: list[TrainExample], steps: int, max_length: int,
              lr: float = 3e-4, method: str = "rft") -> dict:
        from opentao.models import resolve_model
        from opentao.train.trainer import train_model

        if not examples:  # nothing passed the reward threshold: the arm is its starting model, untrained
            return {"examples": 0, "steps": 0, "skipped": "no training examples", "model": base_model}
        out = self.work / "models" / name
        done = out.parent / f"{name}.train.json"
        if (out / "config.json").is_file() and done.is_file():
            return {**json.loads(done.read_text()), "model": str(out)}
        cfg = TrainConfig(method=method, max_steps=steps, batch_size=self.s["batch"], learning_rate=lr, epochs=1,
                          max_length=max_length, save_steps=max(2, steps // 4), seed=SEED)
        t0 = time.time()
        stats = train_model(resolve_model(base_model), examples, cfg, work_dir=self.work / "train" / name,
                            out_dir=out)
        stats.update(train_seconds=time.time() - t0, train_config=cfg.model_dump())
        done.write_text(json.dumps(stats))
        return {**stats, "model": str(out)}

    def eval(self, task: str, model: str, label: str) -> dict:
        from opentao.evaluate.base import evaluate_task
        from opentao.store import RunStore

        if model == "bundled":
            label = "base"  # an arm that trained nothing is the base model: reuse its cached answers

        e = TASKS[task]["eval"]
        return evaluate_task(model, self.test_file(task), self.evaluator(task), label=label,
                             max_examples=self.s["n_test"], batch_size=32, max_new_tokens=e["max_new_tokens"],
                             stop=tuple(e["stop"]), store=RunStore(self.work / task / "evals"))

    # --- arms -----------------------------------------------------------------------------------------
    def tao_examples(self, task: str, k: int, model: str = "bundled", round_: int = 1,
                     tag: str | None = None) -> tuple[list[TrainExample], dict]:
        groups = self.pool(task, model, round_, tag or f"r1-k{self.k_pool}", self.k_pool if round_ == 1 else k)
        return self.examples(task, groups, self.tao_rewards(task, groups, k), TASKS[task]["threshold"], round_)

    def run_tried(self, spec: ArmSpec) -> dict:
        """An arm of the plan (``from``: sft | tao | oracle, round 1) with ``k``/``steps``/``lr``/``threshold``/
        ``method``/``n_train``/``scorers`` changed; at the plan's ``n_train`` the sample pool is the plan's, so only
        training and eval run."""
        task, p = spec.tasks[0], spec.params
        k, method, n = p.get("k", self.s["k"]), p.get("method", "rft"), p.get("n_train")
        name, steps = f"try-{spec.name}", p.get("steps", self.s["steps"])
        if p["from"] == "sft":
            ex = self.sft_examples(task, n)
            tr = self.train(name, "bundled", ex, steps, TASKS[task]["max_length"], lr=p.get("lr", 3e-4))
            return {"train": tr, "selection": {"examples": len(ex)}, "evals": {task: self.eval(task, tr["model"], name)}}
        if n is None:
            groups = self.pool(task, "bundled", 1, f"r1-k{self.k_pool}", self.k_pool)
        else:
            groups = self.pool(task, "bundled", 1, f"r1-n{n}-k{k}", k, n=n)
        if p["from"] == "oracle":
            rewards, threshold = self.gold_rewards(task, groups, k), 1.0
        else:
            rewards = self.tao_rewards(task, groups, k, p.get("scorers"))
            threshold = p.get("threshold", TASKS[task]["threshold"])
        ex, sel = self.examples(task, groups, rewards, threshold, 1, method=method)
        tr = self.train(name, "bundled", ex, steps, TASKS[task]["max_length"], lr=p.get("lr", 3e-4), method=method)
        return {"train": tr, "selection": {**sel, "k": k, "threshold": threshold, "method": method},
                "evals": {task: self.eval(task, tr["model"], name)}}

    def run(self, spec: ArmSpec) -> dict:
        task = spec.tasks[0]
        steps = self.s["steps"]
        if spec.arm == "tried":
            return self.run_tried(spec)
        if spec.arm == "base":
            return {"evals": {task: self.eval(task, "bundled", "base")}}
        if spec.arm == "sft":
            ex = self.sft_examples(task)
            tr = self.train(spec.name, "bundled", ex, steps, TASKS[task]["max_length"])
            return {"train": tr, "selection": {"examples": len(ex)}, "evals": {task: self.eval(task, tr["model"], spec.name)}}
        if spec.arm == "oracle":
            k = self.s["k"]
            groups = self.pool(task, "bundled", 1, f"r1-k{self.k_pool}", self.k_pool)
            ex, sel = self.examples(task, groups, self.gold_rewards(task, groups, k), 1.0, 1)
            tr = self.train(spec.name, "bundled", ex, steps, TASKS[task]["max_length"])
            return {"train": tr, "selection": {**sel, "k": k},
                    "evals": {task: self.eval(task, tr["model"], spec.name)}}
        if spec.arm == "multitask":
            ex, sel = [], {}
            for t in spec.tasks:
                e, sel[t] = self.tao_examples(t, spec.params["k"])
                ex += e
            tr = self.train(spec.name, "bundled", ex, steps * len(spec.tasks),
                            max(TASKS[t]["max_length"] for t in spec.tasks))
            return {"train": tr, "selection": sel,
                    "evals": {t: self.eval(t, tr["model"], spec.name) for t in spec.tasks}}
        # tao / scale: K candidates, R rounds
        k, rounds = spec.params["k"], spec.params.get("rounds", 1)
        if rounds == 1:
            ex, sel = self.tao_examples(task, k)
            tr = self.train(spec.name, "bundled", ex, steps, TASKS[task]["max_length"])
        else:
            prev = self.work / "models" / (f"{task}-tao" if rounds == 2 else f"{task}-tao-r{rounds - 1}")
            if not (prev / "config.json").is_file():
                raise RuntimeError(f"round {rounds} needs the round {rounds - 1} model at {prev}")
            ex, sel = self.tao_examples(task, k, str(prev), rounds, tag=f"r{rounds}-k{k}")
            tr = self.train(spec.name, str(prev), ex, steps, TASKS[task]["max_length"])
        return {"train": tr, "selection": {**sel, "k": k, "rounds": rounds},
                "evals": {task: self.eval(task, tr["model"], spec.name)}}


# --------------------------------------------------------------------------------------------- rendering


def diagnose(mode: str) -> Path:
    """Answer-level diagnostics (:mod:`opentao.bench.diagnose`) of every finished arm of ``mode`` (and, for the full
    mode, of the ``--tried`` arms) from their cached eval answers in ``benchmarks/runs/`` → the committed
    ``results/diagnostics-<mode>.json``. An arm whose answers are not cached here keeps its previous entry; docqa's
    balanced yes/no accuracy needs only the per-example correctness in the arm's JSON, so every arm gets it."""
    import pyarrow.parquet as pq

    from opentao.bench.diagnose import DIAGNOSTICS, docqa_correctness
    from opentao.bench.stats import aligned, paired_bootstrap_balanced
    from opentao.evaluate.base import safe_label
    from opentao.store import RunStore

    out_path = RESULTS / f"diagnostics-{mode}.json"
    out = json.loads(out_path.read_text(encoding="utf-8")) if out_path.is_file() else {}
    arms = {f"{mode}-{n}": d for n, d in ResultDir(RESULTS, mode).all().items()}
    if mode == "full":
        arms.update({f"tried-{n}": d for n, d in ResultDir(RESULTS, "tried").all().items()})
    gold: dict[str, dict[str, dict]] = {}

    def gold_of(task: str) -> dict[str, dict]:
        if task not in gold:
            gold[task] = {str(r["id"]): r for r in read_table_rows(Bench(mode).test_file(task))}
        return gold[task]

    for key, data in arms.items():
        for task, ev in data.get("evals", {}).items():
            entry = out.setdefault(key, {}).get(task, {})
            per = ev.get("per_example")
            if task == "docqa" and per:  # from the committed per-example correctness alone: every arm has it
                entry.update(docqa_correctness((gold_of(task)[i], ok) for i, ok in zip(per["ids"], per["correct"])))
            part = RunStore(WORK / mode / task / "evals").part_path("eval_results", f"r0-{safe_label(ev['model'])}")
            if task in DIAGNOSTICS and part.is_file():
                rows = pq.read_table(part, columns=["example_id", "prediction"]).to_pylist()
                entry.update(DIAGNOSTICS[task]((gold_of(task)[r["example_id"]], r["prediction"]) for r in rows))
            if entry:
                out[key][task] = entry
            elif not out[key]:
                del out[key]
    base = (arms.get(f"{mode}-docqa-base") or {}).get("evals", {}).get("docqa", {}).get("per_example")
    for key, data in arms.items():  # balanced yes/no accuracy vs the base, stratified paired bootstrap
        per = data.get("evals", {}).get("docqa", {}).get("per_example")
        if base and per and key != f"{mode}-docqa-base":
            g, theirs = gold_of("docqa"), set(per["ids"])
            b, a = aligned(base, per)  # on the common ids, in the base's order
            ids = [i for i in base["ids"] if i in theirs]
            yn = [j for j, i in enumerate(ids) if g[i]["kind"] == "yesno"]
            out[key]["docqa"]["yesno_balanced_vs_base"] = paired_bootstrap_balanced(
                [b[j] for j in yn], [a[j] for j in yn], [g[ids[j]]["answer"] for j in yn], seed=SEED)
    out_path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out_path


def write_reports(mode: str) -> list[Path]:
    """``tao report`` of each task's run directories in ``benchmarks/runs/<mode>/<task>/`` (its sample pools, one
    column each, and its evals) → ``benchmarks/reports/<mode>-<task>.html``, linked from the rendered README.
    Tasks with no run directory here (``runs/`` is not committed) get no report."""
    from opentao.report.page import write_report

    written = []
    for task in TASKS:
        dirs = sorted(d for d in (WORK / mode / task).glob("*") if (d / "tables").is_dir())
        if dirs:
            out = HERE / "reports" / f"{mode}-{task}.html"
            out.parent.mkdir(exist_ok=True)
            write_report(dirs, out)
            written.append(out)
    return written


def render(modes: list[str]) -> None:
    parts = [README_HEAD]
    for mode in modes:
        results = ResultDir(RESULTS, mode).all()
        if not results:
            continue
        report.plot_arms(results, RESULTS / f"{mode}-arms.png", f"{mode} run: held-out accuracy per arm")
        report.plot_scaling(results, RESULTS / f"{mode}-scaling.png", f"{mode} run: TAO compute scaling")
        parts.append(report.render_mode(results, mode, f"results/{mode}"))
        if mode == "full" and (tried := ResultDir(RESULTS, "tried").all()):
            parts.append(report.render_tried(tried, results))
        diag = RESULTS / f"diagnostics-{mode}.json"
        if diag.is_file():
            parts.append(report.render_diagnostics(json.loads(diag.read_text(encoding="utf-8")), mode))
        parts.append(f"Sizes ({mode}): `{json.dumps(SIZES[mode])}`\n")
    parts.append(README_TAIL)
    (HERE / "README.md").write_text("\n".join(parts), encoding="utf-8")


README_HEAD = """# Benchmark: TAO's Table 3 / Figure 3 on CPU, three tasks

Rendered by `benchmarks/tao_table.py` from `benchmarks/results/*.json` (one file per finished arm, with every
number, its seed, timing and config). Nothing below is typed by hand.

* **Tasks** — `sql`: text-to-SQL on Chinook, execution accuracy, test query *shapes* unseen in training;
  `docqa`: answer from a passage (BoolQ yes/no + DisflQA spans), exact / normalized match, test *passages*
  unseen; `instruct`: XSum summaries and NQ-open answers under 1–3 verifiable constraints, gold = every
  constraint passes and the answer is relevant to the reference; test constraint *types* unseen in training.
* **Arms** — base; labeled SFT on the training prompts' gold outputs; TAO (prompts only, label-free reward,
  best-of-K SFT, LoRA merged); oracle (same samples and steps as TAO, chosen by gold correctness); multi-task
  TAO (one model, the three tasks' TAO data, the sum of their steps).
* **CIs** — accuracy cells carry (difference to base, paired-bootstrap 95% CI over held-out examples, 2,000
  resamples); the plot's error bars are Wilson intervals of each accuracy.
* **Cost** — tuned models are merged LoRA: same architecture and parameter count as the base, so a token costs
  the same; the response-length and latency columns show whether answers got longer.
"""

README_TAIL = """## How to run

```bash
PYTHONPATH=src python benchmarks/tao_table.py --quick   # spot check, ≤ 20 min on 2 cores
PYTHONPATH=src python benchmarks/tao_table.py           # full run; resumable: rerun until every arm is done
PYTHONPATH=src python benchmarks/tao_table.py --tried   # the variants tried for the missed targets (after the full run)
PYTHONPATH=src python benchmarks/tao_table.py --render  # tables and plots from the saved JSON only
```

Every run ends by refreshing `results/diagnostics-<mode>.json` (answer distributions, per-constraint pass rates)
from the eval answers cached under `benchmarks/runs/`; `--render` reads only the JSON.

On a CPU shared with other jobs add `--threads 1`: two torch threads fighting other processes for two cores
made a training step ~4× slower here (197 s vs 47 s per step). The quick run above used `--threads 1`.

Quick-mode numbers come from 8 training prompts, 16 test examples and 2 optimizer steps of 4 examples per arm: they check
that the machinery works end to end, not the targets (their CIs span tens of points).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (≤ 20 min on 2 cores)")
    ap.add_argument("--render", action="store_true", help="only rebuild README and plots from the JSON files")
    ap.add_argument("--only", nargs="*", help="run only these arm names")
    ap.add_argument("--diagnose", action="store_true",
                    help="only refresh results/diagnostics-<mode>.json from the cached eval answers, then render")
    ap.add_argument("--tried", action="store_true",
                    help="run the arms tried for the missed targets (TRIED; full sizes) instead of the plan")
    ap.add_argument("--reports", action="store_true",
                    help="write reports/<mode>-<task>.html (tao report) from the run directories in runs/, then render")
    ap.add_argument("--hours", type=float, default=None, help="start no new arm after this many hours")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 avoids thread thrashing when other jobs share the cores)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "transformers", "datasets", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.diagnose:
        print(diagnose("quick" if args.quick else "full"))
    if args.quick and args.tried:
        ap.error("--tried runs at full sizes; drop --quick")
    mode = "quick" if args.quick else "full"
    if args.reports:
        print("\n".join(map(str, write_reports("quick" if args.quick else "full"))) or "no run directories in runs/")
    if not args.render and not args.diagnose and not args.reports:
        bench = Bench(mode)
        specs = [s for s in (tried_plan() if args.tried else plan(mode)) if not args.only or s.name in args.only]
        deadline = time.time() + 3600 * args.hours if args.hours else None
        t0 = time.time()
        status = run_arms(specs, bench.run, ResultDir(RESULTS, "tried" if args.tried else mode), seed=SEED,
                          config={"sizes": SIZES[mode], "tasks": TASKS, "threads": args.threads}, deadline=deadline,
                          report=lambda m: print(m, flush=True))
        print(f"{'tried' if args.tried else mode}: {sum(v == 'done' for v in status.values())} arms run, "
              f"{sum(v == 'skipped' for v in status.values())} skipped, wall {time.time() - t0:.0f} s", flush=True)
        diagnose(mode)
    render([m for m in ("full", "quick") if ResultDir(RESULTS, m).all()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
