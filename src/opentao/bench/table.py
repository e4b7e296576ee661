"""``benchmarks/tao_table.py``: TAO's Table 3 / Figure 3 (Databricks 2025) on CPU, bundled tasks, as run configs.

The arms (:mod:`opentao.bench.arms`) are the tasks' shipped configs plus the diffs in ``benchmarks/tao_table.yaml``
(sizes per mode) and ``benchmarks/tried.yaml`` (the variants tried for missed targets), run on the stage functions
``tao run`` calls. Every finished arm is saved at once as ``results/<mode>-<arm>.json`` and skipped on a rerun;
the arms' run directories live in ``runs/<mode>/`` (not committed) and resume too. ``--render`` only rebuilds
``README.md`` and the plots from the JSON.

Seeds: each mode lists its ``seeds`` (the first is 0) and ``seeded`` names the arm kinds run at every seed. All
arms run at seed 0 first (``results/<mode>-<arm>.json``, as before seeds existed); then each seeded arm at each
further seed ``s`` (``results/<mode>-<arm>-s<s>.json``, run directories ``<arm>-s<s>/``), each an (arm, seed)
unit that is skipped once its file exists. The base arm is greedy and seed-invariant: its seed-0 run is every
seed's base (:data:`opentao.bench.arms.SEED_INVARIANT`). The table's seeded cells are means over the seeds with
a pooled (seed × example) paired-bootstrap CI (:func:`opentao.bench.stats.pooled_paired_bootstrap`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opentao.bench import report
from opentao.bench.arms import Runner, Sizes, check_seeds, plan, pool_k_for, seed_runs
from opentao.bench.results import ArmSpec, ResultDir, run_arms
from opentao.bench.views import its_arm
from opentao.tasks import get_task
from opentao.data import read_table_rows
from opentao.errors import TaoError


@dataclass(frozen=True)
class Bench:
    """Where a benchmark lives: ``here`` holds ``tao_table.yaml``, ``tried.yaml``, ``results/``, ``runs/``."""

    here: Path

    @property
    def results(self) -> Path:
        return self.here / "results"

    @property
    def work(self) -> Path:
        return self.here / "runs"

    def settings(self) -> dict[str, Any]:
        path = self.here / "tao_table.yaml"
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TaoError(f"{path}: {exc}") from None

    def sizes(self, mode: str) -> Sizes:
        s = self.settings()
        m = s["modes"][mode]
        return Sizes(n_train=m["n_train"], n_test=m["n_test"], k=m["k"], k_scale=tuple(m["k_scale"]),
                     scale_tasks=tuple(m["scale_tasks"]), rounds=m["rounds"], steps=m["steps"], batch=m["batch"],
                     tasks=tuple(m["tasks"]), run=dict(s.get("run") or {}),
                     multitask=bool(m.get("multitask", True)))

    def seeds(self, mode: str) -> tuple[int, ...]:
        """The mode's ``seeds`` (default ``[0]``); validated by :func:`opentao.bench.arms.seed_runs`."""
        seeds = self.settings()["modes"][mode].get("seeds", [0])
        if not isinstance(seeds, list):
            raise TaoError(f"{self.here / 'tao_table.yaml'}: modes.{mode}.seeds must be a list, got {seeds!r}")
        return tuple(seeds)

    def seeded(self) -> tuple[str, ...]:
        """The arm kinds run at every seed of a mode (``seeded``; default none: seed 0 only)."""
        kinds = self.settings().get("seeded") or []
        if not isinstance(kinds, list):
            raise TaoError(f"{self.here / 'tao_table.yaml'}: seeded must be a list of arm kinds, got {kinds!r}")
        return tuple(kinds)

    def tried_plan(self) -> list[ArmSpec]:
        """The variants of ``tried.yaml``; an entry's optional ``seeds`` (default ``[0]``) is kept in its params
        (:func:`tried_runs` reads it); none without a ``tried.yaml``."""
        path = self.here / "tried.yaml"
        if not path.is_file():
            return []
        rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return [ArmSpec(f"{r['task']}-{r['variant']}", "tried", (r["task"],),
                        {**r["changes"], "why": r["why"], **({"seeds": r["seeds"]} if "seeds" in r else {})})
                for r in rows]


def tried_runs(specs: list[ArmSpec], seeds: tuple[int, ...]) -> list[tuple[int, list[ArmSpec]]]:
    """``[(seed, the tried arms to run at it)]``: every variant at seed 0 (a one-knob variant of a seed-0 plan arm)
    and, at each further seed of the mode (``seeds``), the variants whose ``seeds`` list it — there each reads that
    seed's sample pool and is compared with its arm's run at that seed. A seed the mode does not run (no plan arm,
    no pool to compare on) is an error."""
    wanted: dict[str, list[int]] = {}
    for s in specs:
        got = check_seeds(s.params.get("seeds", [0]), f"tried.yaml {s.name}: ")
        if unknown := sorted(set(got) - set(seeds)):
            raise TaoError(f"tried.yaml {s.name}: seeds {unknown} are not among the mode's seeds {list(seeds)}")
        wanted[s.name] = got
    runs = [(x, [s for s in specs if x in wanted[s.name]]) for x in seeds]
    return [(x, at) for x, at in runs if at]


def described(tried: dict[str, dict], specs: list[ArmSpec]) -> dict[str, dict]:
    """The tried results with the report-only keys of their ``tried.yaml`` entry (``why``, ``vs``: what the row
    says and which arm it is compared with) taken from the file as it is now; what the arm ran (its ``params``
    otherwise) and every number stay as its JSON recorded them."""
    now = {s.name: s.params for s in specs}
    out = {}
    for name, data in tried.items():
        p = dict(data.get("params", {}))
        if name in now:  # an arm no longer listed keeps what its JSON says
            for key in ("why", "vs"):
                p.pop(key, None)
                if key in now[name]:
                    p[key] = now[name][key]
        out[name] = {**data, "params": p}
    return out


def test_file(task: str) -> str:
    t = get_task(task)
    return t.files(t.prepare())["test"]


def diagnose(bench: Bench, mode: str) -> Path:
    """Answer-level diagnostics (:mod:`opentao.bench.diagnose`) of every finished arm of ``mode`` (and, for the full
    mode, of the ``--tried`` arms) from their eval answers in ``runs/`` → the committed
    ``results/diagnostics-<mode>.json``. An arm whose answers are not here keeps its previous entry; an entry whose
    arm has no result file any more (a variant removed from ``tried.yaml``, a deleted arm) is dropped; docqa's
    balanced yes/no accuracy needs only the per-example correctness in the arm's JSON, so every arm gets it; a docqa
    arm with results at several seeds also gets ``yesno_balanced_vs_base_pooled``, the pooled (seed × example)
    stratified bootstrap over its seeds (:func:`~opentao.bench.stats.pooled_paired_bootstrap_balanced`)."""
    import pyarrow.parquet as pq

    from opentao.bench.diagnose import DIAGNOSTICS, docqa_correctness
    from opentao.bench.stats import aligned, aligned_seeds, paired_bootstrap_balanced, pooled_paired_bootstrap_balanced

    out_path = bench.results / f"diagnostics-{mode}.json"
    out = json.loads(out_path.read_text(encoding="utf-8")) if out_path.is_file() else {}
    arms = {f"{mode}-{n}": d for n, d in ResultDir(bench.results, mode).all().items()}
    if mode == "full":
        arms.update({f"tried-{n}": d for n, d in ResultDir(bench.results, "tried").all().items()})
    out = {k: v for k, v in out.items() if k in arms}
    gold: dict[str, dict[str, dict]] = {}

    def gold_of(task: str) -> dict[str, dict]:
        if task not in gold:
            gold[task] = {str(r["id"]): r for r in read_table_rows(test_file(task))}
        return gold[task]

    for key, data in arms.items():
        for task, ev in data.get("evals", {}).items():
            entry = out.setdefault(key, {}).get(task, {})
            per = ev.get("per_example")
            if task == "docqa" and per:  # from the committed per-example correctness alone: every arm has it
                entry.update(docqa_correctness((gold_of(task)[i], ok) for i, ok in zip(per["ids"], per["correct"])))
                if key == f"{mode}-docqa-base":  # the yes/no classes, for balanced accuracy from per-example files
                    entry["yesno_class_of"] = {i: gold_of(task)[i]["answer"] for i in per["ids"]
                                               if gold_of(task)[i]["kind"] == "yesno"}
            part = bench.work / mode / ev["answers"] if ev.get("answers") else None
            if task in DIAGNOSTICS and part is not None and part.is_file():
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
                [b[j] for j in yn], [a[j] for j in yn], [g[ids[j]]["answer"] for j in yn])
    plan_seeds = ResultDir(bench.results, mode).by_seed()
    seeded = [(mode, plan_seeds)] + ([("tried", ResultDir(bench.results, "tried").by_seed())] if mode == "full" else [])
    tried_vs = {s.name: its_arm(s.params) for s in bench.tried_plan()} \
        if mode == "full" else {}
    for entry in out.values():  # the pooled entries are recomputed from the files there are now
        for key in ("yesno_balanced_vs_base_pooled", "yesno_balanced_vs_arm_pooled"):
            entry.get("docqa", {}).pop(key, None)
    for prefix, by_seed in seeded:  # the same, pooled over an arm's seeds
        for name, runs in by_seed.items():
            pers = [r.get("evals", {}).get("docqa", {}).get("per_example") for r in runs.values()]
            if not (base and len(pers) > 1 and all(pers) and name != "docqa-base"):
                continue
            g = gold_of("docqa")
            ids, b, per_seed = aligned_seeds(base, pers)
            yn = [j for j, i in enumerate(ids) if g[i]["kind"] == "yesno"]
            classes = [g[ids[j]]["answer"] for j in yn]
            entry = out.setdefault(f"{prefix}-{name}", {}).setdefault("docqa", {})
            entry["yesno_balanced_vs_base_pooled"] = pooled_paired_bootstrap_balanced(
                [[b[j] for j in yn]] * len(per_seed), [[a[j] for j in yn] for a in per_seed], classes)
            # a tried variant against its arm, over the seeds both ran (the knob's effect, seed × example CI)
            arm = tried_vs.get(name) if prefix == "tried" else None
            ref = (plan_seeds.get(f"docqa-{arm}") or by_seed.get(f"docqa-{arm}") or {}) if arm else {}
            both = [x for x in runs if x in ref]
            ref_pers = [ref[x].get("evals", {}).get("docqa", {}).get("per_example") for x in both]
            if len(both) > 1 and all(ref_pers):
                ids, _, got = aligned_seeds(base, ref_pers + [runs[x]["evals"]["docqa"]["per_example"] for x in both])
                yn = [j for j, i in enumerate(ids) if g[i]["kind"] == "yesno"]
                d = pooled_paired_bootstrap_balanced([[a[j] for j in yn] for a in got[:len(both)]],
                                                     [[a[j] for j in yn] for a in got[len(both):]],
                                                     [g[ids[j]]["answer"] for j in yn])
                entry["yesno_balanced_vs_arm_pooled"] = {**d, "arm": f"docqa-{arm}", "seed_list": both}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out_path


def write_reports(bench: Bench, mode: str) -> list[Path]:
    """``tao report`` of each task's run directories in ``runs/<mode>/<task>/`` (its pools and arms, one column
    each) → ``reports/<mode>-<task>.html``, linked from the rendered README. Tasks with no run directory here
    (``runs/`` is not committed) get no report."""
    from opentao.report.page import write_report

    written = []
    for task in bench.sizes(mode).tasks:
        dirs = sorted(d for d in (bench.work / mode / task).glob("*") if (d / "tables").is_dir())
        if dirs:
            out = bench.here / "reports" / f"{mode}-{task}.html"
            out.parent.mkdir(exist_ok=True)
            write_report(dirs, out)
            written.append(out)
    return written


def render(bench: Bench, modes: list[str]) -> None:
    parts = [README_HEAD]
    for mode in modes:
        by_seed = ResultDir(bench.results, mode).by_seed()
        results = {name: runs[0] for name, runs in by_seed.items() if 0 in runs}
        if not results:
            continue
        report.plot_arms(results, bench.results / f"{mode}-arms.png", f"{mode} run: held-out accuracy per arm")
        report.plot_scaling(results, bench.results / f"{mode}-scaling.png", f"{mode} run: TAO compute scaling")
        diag_path = bench.results / f"diagnostics-{mode}.json"
        diag = json.loads(diag_path.read_text(encoding="utf-8")) if diag_path.is_file() else None
        plan_diag = {k.removeprefix(f"{mode}-"): v for k, v in (diag or {}).items() if k.startswith(f"{mode}-")}
        parts.append(report.render_mode(results, mode, f"results/{mode}", by_seed=by_seed, diag=plan_diag))
        if mode == "full" and (tried_seeds := ResultDir(bench.results, "tried").by_seed()):
            specs = bench.tried_plan()
            tried_seeds = {name: {x: described({name: d}, specs)[name] for x, d in runs.items()}
                           for name, runs in tried_seeds.items()}
            tried = {name: runs[0] for name, runs in tried_seeds.items() if 0 in runs}
            parts.append(report.render_tried(tried, results, tried_seeds=tried_seeds, plan_seeds=by_seed,
                                             diag={k.removeprefix("tried-"): v for k, v in (diag or {}).items()
                                                   if k.startswith("tried-")},
                                             base_balanced=plan_diag.get("docqa-base", {}).get("docqa", {})
                                             .get("yesno_balanced_accuracy")))
        if mode == "full" and (old := ResultDir(bench.results / "n64", "tried").all()):
            parts.append(report.render_tried(old, ResultDir(bench.results / "n64", "full").all(),
                                             title="Tried earlier, on the 64-prompt run (results/n64/)", intro=N64_TRIED))
        if diag:
            parts.append(report.render_diagnostics(diag, mode))
        mode_sizes = bench.settings()["modes"][mode]
        parts.append(f"Sizes ({mode}): `{json.dumps(mode_sizes)}`\n")
    parts.append(README_TAIL)
    (bench.here / "README.md").write_text("\n".join(parts), encoding="utf-8")


README_HEAD = """# Benchmark: TAO's Table 3 / Figure 3 on CPU, four tasks

Rendered by `benchmarks/tao_table.py` from `benchmarks/results/*.json` (one file per finished arm and seed, with
every number, its seed, timing and config). Nothing below is typed by hand. The earlier full run (64 training
prompts, K=4, eval on HF) and its tried variants are archived in `results/n64/`.

* **Tasks** — `sql`: text-to-SQL on Chinook, execution accuracy, test query *shapes* unseen in training;
  `sql-flights`: the same recipe (`config.yaml` kept equal to sql's) on NYC flights, a database it was not tuned on;
  `docqa`: answer from a passage (BoolQ yes/no + DisflQA spans), exact / normalized match, test *passages*
  unseen; `instruct`: XSum summaries and NQ-open answers under 1–3 verifiable constraints, gold = every
  constraint passes and the answer is relevant to the reference; test constraint *types* unseen in training.
* **Arms** — each is the task's shipped config (`src/opentao/tasks/<task>/config.yaml`) plus the diff in
  `benchmarks/tao_table.yaml`, run on the stages `tao run` uses: base; labeled SFT on the training prompts' gold
  outputs; TAO (prompts only, label-free reward, best-of-K SFT, LoRA merged); oracle (same samples and steps as
  TAO, scored by a gold-reading scorer plugin); multi-task TAO (one model, the three tasks' TAO data, the sum of
  their steps).
* **CIs** — accuracy cells carry (difference to base, paired-bootstrap 95% CI over held-out examples, 2,000
  resamples). Arms run at several seeds (`seeds` and `seeded` in `tao_table.yaml`; "(N seeds)" in the cell) show
  the mean accuracy over their seeds and a *pooled* CI: each resample draws the seeds with replacement and the
  held-out examples with replacement (one draw shared by the seeds, which all ran on the same test set) and
  averages the drawn seeds' paired differences to the base, so the interval covers both run-to-run (seed) and
  test-set variance. The base is greedy decoding of the untuned model, which no seed changes: one run serves
  every seed. The plot's error bars are Wilson intervals of each (seed-0) accuracy.
* **Cost** — tuned models are merged LoRA: same architecture and parameter count as the base, so a token costs
  the same; the response-length and latency columns show whether answers got longer.
"""

N64_TRIED = ("The full run before this one had 64 training prompts per task, K=4, 16 optimizer steps of 8 and 120 "
             "test examples per task, evaluated on HF (`results/n64/tried.yaml`). Its variants below are measured "
             "against *its* plan arms, not this run's.")

README_TAIL = """## How to run

```bash
PYTHONPATH=src python benchmarks/tao_table.py --quick   # spot check, ≤ 20 min on 2 cores
PYTHONPATH=src python benchmarks/tao_table.py           # full run; resumable: rerun until every arm is done
PYTHONPATH=src python benchmarks/tao_table.py --tried   # the variants of tried.yaml (after the full run)
PYTHONPATH=src python benchmarks/tao_table.py --render  # tables and plots from the saved JSON only
```

Each arm's run directory (`benchmarks/runs/<mode>/<task>/<arm>/`) holds the same tables as a `tao run`:
`tao inspect` and `tao report` read it. Every run ends by refreshing `results/diagnostics-<mode>.json` (answer
distributions, per-constraint pass rates) from the eval answers there; `--render` reads only the JSON.

On a CPU shared with other jobs add `--threads 1`: two torch threads fighting other processes for two cores
made a training step ~4× slower.

Quick-mode numbers come from 8 training prompts, 16 test examples and 2 optimizer steps of 4 examples per arm: they check
that the machinery works end to end, not the targets (their CIs span tens of points).
"""


def main(argv: list[str] | None = None, here: str | Path | None = None) -> int:
    bench = Bench(Path(here) if here else Path.cwd() / "benchmarks")
    ap = argparse.ArgumentParser(description="TAO's Table 3 / Figure 3 on CPU (benchmarks/README.md)")
    ap.add_argument("--quick", action="store_true", help="small sizes (≤ 20 min on 2 cores)")
    ap.add_argument("--render", action="store_true", help="only rebuild README and plots from the JSON files")
    ap.add_argument("--only", nargs="*", help="run only these arm names")
    ap.add_argument("--diagnose", action="store_true",
                    help="only refresh results/diagnostics-<mode>.json from the cached eval answers, then render")
    ap.add_argument("--tried", action="store_true",
                    help="run the arms of tried.yaml (full sizes) instead of the plan")
    ap.add_argument("--reports", action="store_true",
                    help="write reports/<mode>-<task>.html (tao report) from the run directories in runs/, then render")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="run only these of the mode's seeds (default: all of them, 0 first)")
    ap.add_argument("--hours", type=float, default=None, help="start no new arm after this many hours")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 avoids thread thrashing when other jobs share the cores)")
    args = ap.parse_args(argv)
    if args.quick and args.tried:
        ap.error("--tried runs at full sizes; drop --quick")
    if args.tried and not (bench.here / "tried.yaml").is_file():
        ap.error(f"--tried: no {bench.here / 'tried.yaml'}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "transformers", "datasets", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    mode = "quick" if args.quick else "full"
    if args.diagnose:
        print(diagnose(bench, mode))
    if args.reports:
        print("\n".join(map(str, write_reports(bench, mode))) or "no run directories in runs/")
    if not args.render and not args.diagnose and not args.reports:
        sizes = bench.sizes(mode)
        plan_runs = seed_runs(plan(sizes), bench.seeds(mode), bench.seeded())
        # tried arms are one-knob variants of the plan arms at seed 0 (and at the seeds an entry lists)
        full_runs = tried_runs(bench.tried_plan(), bench.seeds(mode)) if args.tried else plan_runs
        # a seed's pool K follows every plan arm it has, not the --only subset or the tried arms (or either
        # would resample the pool the plan arms at that seed trained on)
        pool_ks = {seed: pool_k_for(sizes, seed_specs) for seed, seed_specs in plan_runs}
        runs = [(seed, [s for s in seed_specs if not args.only or s.name in args.only]) for seed, seed_specs in full_runs]
        runs = [(seed, seed_specs) for seed, seed_specs in runs if seed_specs]
        if args.seeds is not None:
            unknown = sorted(set(args.seeds) - {seed for seed, _ in runs})
            if unknown:
                ap.error(f"--seeds {unknown}: not among the seeds this run has ({', '.join(str(x) for x, _ in runs)})")
            runs = [(seed, seed_specs) for seed, seed_specs in runs if seed in args.seeds]
        deadline = time.time() + 3600 * args.hours if args.hours else None
        t0 = time.time()
        status: dict[tuple[str, int], str] = {}
        for seed, seed_specs in runs:
            # each seed sizes its pools by the plan arms it runs (at seed 0: every arm, Sizes.task_pool_k)
            runner = Runner(sizes, bench.work / mode, seed=seed, pool_k=pool_ks.get(seed))
            done = run_arms(seed_specs, runner.run, ResultDir(bench.results, "tried" if args.tried else mode),
                            seed=seed, config={"sizes": bench.settings()["modes"][mode],
                                               "run": sizes.run, "threads": args.threads},
                            deadline=deadline, report=lambda m: print(m, flush=True))
            status.update({(name, seed): v for name, v in done.items()})
        print(f"{'tried' if args.tried else mode}: {sum(v == 'done' for v in status.values())} (arm, seed) runs, "
              f"{sum(v == 'skipped' for v in status.values())} skipped, "
              f"{sum(v == 'redone' for v in status.values())} run again, wall {time.time() - t0:.0f} s", flush=True)
        diagnose(bench, mode)
    render(bench, [m for m in ("full", "quick") if ResultDir(bench.results, m).all()])
    return 0
