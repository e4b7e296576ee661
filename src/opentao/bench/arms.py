"""The benchmark's arms: run configs over the real stages (the functions ``tao run`` calls).

An arm is a :class:`~opentao.config.RunConfig` built from its task's shipped config
(``tasks/<name>/config.yaml``) plus a small diff: the benchmark's sizes (training prompts, test examples, K,
optimizer steps; ``benchmarks/tao_table.yaml``) and the arm's own change. Each arm works in its own run
directory, which ends up holding the tables ``tao run`` writes (prompts, candidates, scores, train_examples,
eval_results, the resolved config), so ``tao inspect`` and ``tao report`` read an arm like any run.

* ``base`` — the base model, evaluated (``stage_eval``).
* ``sft`` — labeled SFT: the run's ``train_examples`` are the training prompts with their **gold** outputs;
  then ``stage_train`` and ``stage_eval``.
* ``tao`` — ``stage_score`` with the task's label-free scorers, ``stage_train``, ``stage_eval``.
* ``oracle`` — the same candidates scored by :class:`opentao.bench.oracle.GoldScorer` (reads gold), threshold 1.
* ``multitask`` — one model trained on the union of the tasks' TAO examples with the sum of their steps,
  evaluated on each task.
* ``scale`` — TAO at another K, or round r: the TAO arm's run directory continued to round r, which samples
  from round r-1's model exactly as ``tao run`` with ``rounds: r`` does. When that model is gone (a fresh clone
  has the result files, not the run directories), the rounds before it run again and their result files are
  replaced (:meth:`Runner.rebuild`): a rounds curve is one chain of models at each seed.

Sample pool (a benchmark design choice, not a stage feature): the round-1 arms of a task share one generate run
(``stage_generate``) at the mode's largest K for a K-scaling task, at the default K for any other; an arm at K
copies each prompt's first K slots into its own run directory, so a larger K sees a superset of a smaller one's
samples and the K curve is not blurred by independent draws. An arm whose scorer keeps no training example is its
starting model, untrained (``train.skipped``), and is evaluated as such.

Seeds: a :class:`Runner` works at one seed, the run config's ``seed`` (candidate sampling) and ``train.seed``
(training data order, LoRA init). At seed 0 the run directories are ``<task>/<arm>/`` and ``<task>/pool-k<K>/``
as before seeds existed; at seed ``s > 0`` they are ``<task>/<arm>-s<s>/`` and ``<task>/pool-k<K>-s<s>/``: each
seed samples its own pool, so seeds share no candidate (a task's pool is at the default K when no K-scaling arm of
it runs at that seed, :func:`pool_k_for`). :func:`seed_runs` picks the arms run at each seed. The
base arm is greedy decoding of the untuned model, which no seed reaches (:data:`SEED_INVARIANT`): it runs once,
at seed 0, and that run is every seed's base (an untrained arm at any seed reuses its answers too).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.bench.results import ArmSpec
from opentao.tasks import get_task
from opentao.config import RunConfig, load_config
from opentao.data import read_table_rows
from opentao.errors import TaoError
from opentao.records import Candidate, TrainExample
from opentao.store import RunStore

log = logging.getLogger(__name__)

ORACLE = "opentao.bench.oracle:GoldScorer"
KINDS = ("base", "sft", "tao", "oracle", "multitask", "scale")  # the plan's arm kinds (ArmSpec.arm)
SEED_INVARIANT = frozenset({"base"})  # greedy eval of the untuned model: one run serves every seed


@dataclass(frozen=True)
class Sizes:
    """One mode's sizes (``benchmarks/tao_table.yaml``): ``steps`` optimizer steps of ``batch`` examples for every
    single-task trained arm; ``run`` is the config diff every arm shares (batching, learning rate, seed)."""

    n_train: int
    n_test: int
    k: int
    k_scale: tuple[int, ...]
    scale_tasks: tuple[str, ...]
    rounds: int
    steps: int
    batch: int
    tasks: tuple[str, ...]
    run: dict[str, Any] = field(default_factory=dict)
    multitask: bool = True  # run the multi-task TAO arm

    @property
    def k_pool(self) -> int:
        return max(self.k, *self.k_scale)

    def task_pool_k(self, task: str) -> int:
        """A task's seed-0 pool K: the mode's largest K for a K-scaling task, else the default K (a K=16 pool
        nothing reads past slot K would only cost generation time)."""
        return self.k_pool if task in self.scale_tasks else self.k


def plan(s: Sizes) -> list[ArmSpec]:
    """The mode's arms in run order: task by task (in ``tasks`` order), its headline arms then its K and round
    arms (round r after round r-1), so a run cut short leaves whole tasks; the multi-task arm last."""
    specs: list[ArmSpec] = []
    for task in s.tasks:
        for arm in ("base", "sft", "tao", "oracle"):
            specs.append(ArmSpec(f"{task}-{arm}", arm, (task,), {"k": s.k, "rounds": 1} if arm == "tao" else {}))
        if task in s.scale_tasks:
            for k in s.k_scale:
                if k != s.k:
                    specs.append(ArmSpec(f"{task}-tao-k{k}", "scale", (task,), {"k": k, "rounds": 1}))
            for r in range(2, s.rounds + 1):
                specs.append(ArmSpec(f"{task}-tao-r{r}", "scale", (task,), {"k": s.k, "rounds": r}))
    if s.multitask:  # reads the tasks' TAO arms
        specs.append(ArmSpec("multitask", "multitask", tuple(s.tasks), {"k": s.k}))
    return specs


def check_seeds(seeds: object, where: str = "") -> list[int]:
    """``seeds`` as a list: distinct non-negative integers, the first 0 (the seed of the result files without a
    seed suffix); anything else raises :class:`TaoError` (``where`` prefixes the message)."""
    if not isinstance(seeds, (list, tuple)) or not seeds or seeds[0] != 0 or len(set(seeds)) != len(seeds) or \
            not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds):
        raise TaoError(f"{where}seeds must be distinct non-negative integers starting with 0, got {seeds!r}")
    return list(seeds)


def seed_runs(specs: list[ArmSpec], seeds: tuple[int, ...] | list[int],
              seeded: tuple[str, ...] | list[str]) -> list[tuple[int, list[ArmSpec]]]:
    """``[(seed, the arms to run at it)]``: every arm at the first seed (which must be 0: the seed of the result
    files without a seed suffix), and at each further seed the arms whose kind is in ``seeded`` — less the
    seed-invariant kinds (:data:`SEED_INVARIANT`), whose seed-0 run stands for every seed."""
    seeds = check_seeds(seeds)
    unknown = sorted(set(seeded) - set(KINDS))
    if unknown:
        raise TaoError(f"seeded: unknown arm kinds {unknown} (known: {', '.join(KINDS)})")
    again = [s for s in specs if s.arm in seeded and s.arm not in SEED_INVARIANT]
    return [(seeds[0], list(specs))] + [(x, again) for x in seeds[1:] if again]


def pool_k_for(s: Sizes, specs: list[ArmSpec]) -> dict[str, int]:
    """The K each task's shared pool needs at a seed that runs ``specs``: the mode's largest K for a task whose
    K-scaling arm runs there, else the default K (a task without a K curve never pays for K=16 samples)."""
    scaled = {t for x in specs if x.arm == "scale" for t in x.tasks}
    return {t: s.k_pool if t in scaled else s.k for t in s.tasks}


class Runner:
    """Runs one arm at a time at ``seed`` in ``work/<task>/<arm>/`` run directories (``<arm>-s<seed>/`` at a seed
    other than 0); every stage resumes from its tables."""

    def __init__(self, sizes: Sizes, work: str | Path, seed: int = 0, pool_k: dict[str, int] | None = None) -> None:
        self.s = sizes
        self.work = Path(work)
        self.seed = seed
        self.pool_k = pool_k or {}  # each task's round-1 pool K (default Sizes.task_pool_k): see pool_k_for
        self._dirs: dict[str, Path] = {}

    # --- configs --------------------------------------------------------------------------------------
    def task_dir(self, task: str) -> Path:
        if task not in self._dirs:
            self._dirs[task] = get_task(task).prepare()
        return self._dirs[task]

    def files(self, task: str) -> dict[str, str | None]:
        return get_task(task).files(self.task_dir(task))

    def config(self, task: str, run_dir: Path, *, k: int | None = None, n_train: int | None = None,
               steps: int | None = None, **diff: Any) -> RunConfig:
        """The task's shipped config + the mode's shared diff + sizes + ``diff`` (dotted keys)."""
        f = self.files(task)
        steps = steps or self.s.steps
        direct: dict[str, Any] = {
            **self.s.run,
            "run_dir": str(run_dir), "prompts": f["prompts"], "db": f["db"], "eval.data": f["test"],
            "max_prompts": n_train or self.s.n_train, "seed": self.seed, "generate.k": k or self.s.k,
            "train.max_steps": steps, "train.batch_size": self.s.batch, "train.save_steps": max(2, steps // 4),
            "train.seed": self.seed, "eval.max_examples": self.s.n_test,
            **diff,
        }
        return load_config(get_task(task).config_path, None, **direct)

    def tag(self, name: str) -> str:
        """A run directory's name at this runner's seed: ``name`` at seed 0, ``name-s<seed>`` otherwise."""
        return name if self.seed == 0 else f"{name}-s{self.seed}"

    def arm_dir(self, task: str, name: str) -> Path:
        return self.work / task / self.tag(name)

    def base_dir(self, task: str) -> Path:
        """The base arm's run directory: the seed-0 one at every seed (:data:`SEED_INVARIANT`)."""
        return self.work / task / f"{task}-base"

    # --- stages ---------------------------------------------------------------------------------------
    def pool(self, task: str, n_train: int | None = None, k: int | None = None) -> RunStore:
        """The task's round-1 sample pool at this seed: ``stage_generate`` at ``k`` (default:
        :meth:`Sizes.task_pool_k`)."""
        from opentao.pipeline import open_run, stage_generate

        k = k or self.pool_k.get(task) or self.s.task_pool_k(task)
        tag = f"pool-k{k}" if n_train is None else f"pool-n{n_train}-k{k}"
        cfg = self.config(task, self.work / task / self.tag(tag), k=k, n_train=n_train)
        store = open_run(cfg, ("generate",))
        stage_generate(store, cfg, 1)
        return store

    def seed_candidates(self, pool: RunStore, store: RunStore, k: int) -> None:
        """Copy the pool's prompts and each prompt's first ``k`` candidate slots (part by part) into ``store``."""
        from opentao.generate.stage import write_prompts
        from opentao.records import Prompt

        write_prompts(store, [Prompt.from_row(r) for r in pool.read("prompts", 1)], 1)
        for part in pool.parts("candidates"):
            key = part.stem.removeprefix("part-")
            if store.has_part("candidates", key) or not key.startswith("r1-"):
                continue
            cands = [Candidate.from_row(r) for r in _read_parquet(part)]
            keep = [c for c in cands if int(c.candidate_id.rsplit("#", 1)[1]) < k]
            store.write_part("candidates", key, keep, Candidate.SCHEMA)

    def score_train(self, store: RunStore, cfg: RunConfig, round_: int = 1) -> dict:
        """``stage_score`` then ``stage_train``; no example kept → ``{"skipped": ..., "model": cfg.model}``."""
        from opentao.pipeline import stage_score

        stage_score(store, cfg, round_)
        return self.train(store, cfg, round_, base=cfg.model if round_ == 1 else None)

    def train(self, store: RunStore, cfg: RunConfig, round_: int = 1, base: str | None = None) -> dict:
        from opentao.pipeline import stage_train

        try:
            return stage_train(store, cfg, round_)
        except TaoError as exc:
            if store.has_part("train_examples", f"r{round_}") or not str(exc).startswith("no training examples"):
                raise
            return {"examples": 0, "steps": 0, "skipped": "no training examples",
                    "model": base or str(store.model_dir(round_ - 1))}

    def eval(self, task: str, store: RunStore, cfg: RunConfig, model: str, label: str, round_: int) -> dict:
        """``stage_eval`` of ``model``; the base model (an untrained arm too, at any seed) reuses the base arm's
        answers in the seed-0 base directory (whose recorded config keeps seed 0)."""
        from opentao.pipeline import open_run, stage_eval

        from opentao.evaluate.base import safe_label

        if model == cfg.model:
            cfg = self.config(task, self.base_dir(task), seed=0, **{"train.seed": 0})
            store, label, round_ = open_run(cfg), "base", 0
        ev = stage_eval(store, cfg, model, label, round_)
        answers = store.part_path("eval_results", f"r{round_}-{safe_label(label)}")
        return {**ev, "answers": str(answers.relative_to(self.work))}

    # --- arms -----------------------------------------------------------------------------------------
    def run(self, spec: ArmSpec) -> dict:
        task, p = spec.tasks[0], spec.params
        if spec.arm == "tried":
            return self.run_tried(spec)
        if spec.arm == "base":
            cfg = self.config(task, self.base_dir(task), seed=0, **{"train.seed": 0})
            return {"evals": {task: self.eval(task, RunStore(cfg.run_dir), cfg, cfg.model, "base", 0)}}
        if spec.arm == "sft":
            return self.sft(task, spec.name)
        if spec.arm == "oracle":
            return self.tao(task, spec.name, self.s.k, oracle=True)
        if spec.arm == "multitask":
            return self.multitask(spec)
        rounds = p.get("rounds", 1)
        if rounds == 1:
            return self.tao(task, spec.name, p["k"])
        return self.next_round(task, spec.name, p["k"], rounds)

    def sft(self, task: str, name: str, n_train: int | None = None, steps: int | None = None,
            **diff: Any) -> dict:
        from opentao.generate.stage import write_prompts
        from opentao.pipeline import open_run, round_prompts

        cfg = self.config(task, self.arm_dir(task, name), n_train=n_train, steps=steps, **diff)
        store = open_run(cfg, ("train",))
        prompts = round_prompts(cfg, 1)
        write_prompts(store, prompts, 1)
        if not store.has_part("train_examples", "r1"):
            gold = {str(r["id"]): r for r in read_table_rows(self.files(task)["gold"])}
            field_ = get_task(task).gold_output
            # the gold outputs, trained with the rft (SFT) loss: kind rft, like best-of-K examples
            ex = [TrainExample(q.prompt_id, "rft", q.messages, str(gold[q.prompt_id][field_]), round=1)
                  for q in prompts]
            store.write_part("train_examples", "r1", ex, TrainExample.SCHEMA)
        tr = self.train(store, cfg, 1, base=cfg.model)
        n = store.counts().get("train_examples", 0)
        return {"train": tr, "selection": {"examples": n},
                "evals": {task: self.eval(task, store, cfg, tr["model"], name, 1)}}

    def tao(self, task: str, name: str, k: int, *, oracle: bool = False, n_train: int | None = None,
            steps: int | None = None, **diff: Any) -> dict:
        """Round 1 of TAO (or of the oracle) at K=``k`` on the pool's first ``k`` slots."""
        from opentao.pipeline import open_run

        if oracle:
            f = self.files(task)
            diff = {"score.scorers": [{"type": ORACLE, "task": task, "gold": f["gold"], "db": f["db"]}],
                    "train.threshold": 1.0, **diff}
        cfg = self.config(task, self.arm_dir(task, name), k=k, n_train=n_train, steps=steps, **diff)
        pool = self.pool(task, n_train, None if n_train is None else k)
        store = open_run(cfg, ("score", "train"))
        self.seed_candidates(pool, store, k)
        tr = self.score_train(store, cfg, 1)
        return {"train": tr, "selection": {**self.selection(task, store, 1), "k": k, "rounds": 1},
                "evals": {task: self.eval(task, store, cfg, tr["model"], name, 1)}}

    def next_round(self, task: str, name: str, k: int, rounds: int, arm: str | None = None, **diff: Any) -> dict:
        """Round ``rounds`` in the run directory of ``arm`` (default the TAO arm, ``<task>-tao``): it samples from
        and trains round ``rounds - 1``'s model."""
        from opentao.pipeline import open_run, stage_generate

        cfg = self.config(task, self.arm_dir(task, arm or f"{task}-tao"), k=k, rounds=rounds, **diff)
        store = RunStore(cfg.run_dir)
        rebuilt: list[tuple[ArmSpec, dict]] = []
        if not (store.model_dir(rounds - 1) / "config.json").is_file():
            if arm is not None:
                raise TaoError(f"round {rounds} needs round {rounds - 1}'s model in {cfg.run_dir}: run that arm first")
            rebuilt = self.rebuild(task, k, rounds - 1, name)
        store = open_run(cfg, ("generate", "score", "train"))
        stage_generate(store, cfg, rounds)
        tr = self.score_train(store, cfg, rounds)
        out = {"train": tr, "selection": {**self.selection(task, store, rounds), "k": k, "rounds": rounds},
               "evals": {task: self.eval(task, store, cfg, tr["model"], name, rounds)}}
        return {**out, "rebuilt": rebuilt} if rebuilt else out

    def rebuild(self, task: str, k: int, round_: int, needed_by: str) -> list[tuple[ArmSpec, dict]]:
        """Run round ``round_`` of the task's TAO arm again (and the rounds before it whose models are gone too),
        because a later round grows from its model and the run directory no longer has it — a fresh clone has
        the result files but not ``runs/``. Returns ``[(arm, its new result)]`` in round order; the caller
        (:func:`opentao.bench.results.run_arms`) saves them over the old result files, so every round of a
        rounds curve at this seed belongs to one chain of models."""
        name = f"{task}-tao" if round_ == 1 else f"{task}-tao-r{round_}"
        log.warning("%s needs round %d's model, which is not in %s: running %s%s again (its result file is "
                    "replaced)", needed_by, round_, self.arm_dir(task, f"{task}-tao"), name,
                    "" if self.seed == 0 else f" at seed {self.seed}")
        t0 = time.time()
        res = self.tao(task, name, k) if round_ == 1 else self.next_round(task, name, k, round_)
        earlier = res.pop("rebuilt", [])
        spec = ArmSpec(name, "tao" if round_ == 1 else "scale", (task,), {"k": k, "rounds": round_})
        wall = time.time() - t0 - sum(r["wall_seconds"] for _, r in earlier)  # this round's own time
        return [*earlier, (spec, {**res, "rerun_for": needed_by, "wall_seconds": wall})]

    def multitask(self, spec: ArmSpec) -> dict:
        from opentao.pipeline import open_run

        sel, examples = {}, []
        for t in spec.tasks:  # the tasks' TAO arms must have run (the plan orders them first)
            tao_store = RunStore(self.arm_dir(t, f"{t}-tao"))
            if not tao_store.parts("scores"):
                raise TaoError(f"multitask needs the {t}-tao arm first")
            examples += [TrainExample.from_row(r) for r in tao_store.read("train_examples", 1)]
            sel[t] = self.selection(t, tao_store, 1)
        work = self.work / self.tag("multitask")
        lengths = [self.config(t, work).train.max_length for t in spec.tasks]
        cfg = self.config(spec.tasks[0], work, steps=self.s.steps * len(spec.tasks),
                          **{"train.max_length": max(lengths)})
        store = open_run(cfg, ("train",))
        if not store.has_part("train_examples", "r1"):
            store.write_part("train_examples", "r1", examples, TrainExample.SCHEMA)
        tr = self.train(store, cfg, 1, base=cfg.model)
        evals = {}
        for t in spec.tasks:
            tcfg = self.config(t, work)
            evals[t] = self.eval(t, store, tcfg, tr["model"], f"{spec.name}-{t}", 1)
        return {"train": tr, "selection": sel, "evals": evals}

    def run_tried(self, spec: ArmSpec) -> dict:
        """A round-1 plan arm (``from``: sft | tao | oracle) with ``k``/``steps``/``lr``/``threshold``/``method``/
        ``n_train``/``scorers``/``set`` (dotted config keys) changed; at the plan's ``n_train`` it reads the plan's
        sample pool. ``rounds: R`` (≥ 2, ``from: tao``) with ``after: <variant>`` is round R of that tried TAO variant
        instead: it runs in the variant's run directory, from its round R-1 model, with the same changes."""
        task, p = spec.tasks[0], spec.params
        diff: dict[str, Any] = {}
        if "lr" in p:
            diff["train.learning_rate"] = p["lr"]
        if "method" in p:
            diff["train.method"] = p["method"]
        if "threshold" in p:
            diff["train.threshold"] = p["threshold"]
        if "scorers" in p:
            diff["score.scorers"] = p["scorers"]
        diff.update(p.get("set", {}))  # any dotted run-config keys
        name = f"try-{spec.name}"
        k = p.get("k", self.s.k)
        if (rounds := int(p.get("rounds", 1))) > 1:
            if p["from"] != "tao" or not p.get("after"):
                raise TaoError(f"tried arm {spec.name}: rounds > 1 needs from: tao and after: <the round-1 variant>")
            res = self.next_round(task, name, k, rounds, arm=f"try-{task}-{p['after']}", **diff)
        elif p["from"] == "sft":
            return self.sft(task, name, p.get("n_train"), p.get("steps"), **diff)
        else:
            res = self.tao(task, name, k, oracle=p["from"] == "oracle", n_train=p.get("n_train"),
                           steps=p.get("steps"), **diff)
        if p["from"] == "oracle":  # the oracle's gold reward keeps only correct candidates
            threshold = 1.0
        else:
            threshold = p.get("threshold", self.config(task, self.arm_dir(task, name)).train.threshold)
        res["selection"].update(threshold=threshold, method=p.get("method", "rft"))
        return res

    # --- diagnostics (gold read here only to describe what was kept; never used for selection) --------
    def selection(self, task: str, store: RunStore, round_: int) -> dict:
        f = self.files(task)
        grader = get_task(task).grader(f["db"])
        gold = {str(r["id"]): r for r in read_table_rows(f["gold"])}
        cands = {r["candidate_id"]: Candidate.from_row(r) for r in store.read("candidates", round_)}
        rewards = [r["score"] for r in store.read("scores", round_) if r["scorer"] == "combined"]
        ex = [TrainExample.from_row(r) for r in store.read("train_examples", round_)] \
            if store.has_part("train_examples", f"r{round_}") else []
        ok = {cid: float(grader.grade(gold[c.prompt_id], c.response)[0]) for cid, c in cands.items()}
        vals = [r for r in rewards if r is not None]
        sel: dict[str, Any] = {
            "examples": len(ex), "prompts": len({c.prompt_id for c in cands.values()}), "candidates": len(cands),
            "mean_reward": sum(vals) / len(vals) if vals else None,
            "gold_correct_share_of_candidates": sum(ok.values()) / max(len(ok), 1),
            "gold_correct_share_of_chosen": (sum(ok[e.chosen_id] for e in ex) / len(ex)) if ex else None}
        if task == "docqa":  # is the training set itself skewed to one answer?
            from opentao.tasks.docqa import yes_no

            said = [yes_no(e.chosen) for e in ex if gold[e.prompt_id]["kind"] == "yesno"]
            said = [a for a in said if a]
            sel["chosen_yesno"] = len(said)
            sel["chosen_yes_share"] = said.count("yes") / len(said) if said else None
        return sel


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
