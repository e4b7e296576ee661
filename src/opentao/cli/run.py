"""The run and stage verbs of ``tao``: ``generate``, ``score``, ``train``, ``eval``, ``run``, ``quickstart``,
``prepare``, ``tables``. Every verb reads a config (optional YAML + ``--set key=value`` overrides), works in a run
directory, and skips work that is already there; :func:`register` adds them to the app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from opentao.cli.app import ConfigOpt, EngineOpt, ForceOpt, ModelOpt, PromptsOpt, RoundOpt, RunDirOpt, SetOpt, out
from opentao.config import RunConfig, load_config
from opentao.errors import TaoError


def _cfg(config: Path | None, sets: list[str] | None, **direct) -> RunConfig:
    return load_config(config, sets, **direct)


def _open(cfg: RunConfig, *stages: str):
    from opentao.pipeline import open_run

    return open_run(cfg, stages)


def generate(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, model: ModelOpt = None,
             prompts: PromptsOpt = None, round_: RoundOpt = 1,
             k: Annotated[Optional[int], typer.Option(help="candidates per prompt")] = None,
             engine: EngineOpt = None) -> None:
    """Stage 1: sample K candidates per prompt into the run's `candidates` table."""
    from opentao.pipeline import stage_generate

    cfg = _cfg(config, set_, run_dir=run_dir, model=model, prompts=prompts,
               **{"generate.k": k, "generate.engine": engine})
    stats = stage_generate(_open(cfg, "generate"), cfg, round_)
    out.print(f"generate: {stats['candidates']} candidates for {stats['prompts']} prompts "
              f"({stats['parts_skipped']}/{stats['parts']} parts already done) → {cfg.run_dir}")


def score(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, round_: RoundOpt = 1,
          gold: Annotated[Optional[Path], typer.Option(
              help="labels (JSONL/CSV/Parquet with the prompts' ids and a gold 'sql' or 'answer') to check each "
                   "scorer's reward integrity; never used for training")] = None,
          engine: EngineOpt = None) -> None:
    """Stage 2: rate every candidate group with the configured scorers (no labels; on Ray with a ray-* engine)."""
    from opentao.pipeline import fmt_means, stage_integrity, stage_score

    cfg = _cfg(config, set_, run_dir=run_dir, **{"generate.engine": engine})
    if gold is not None and not gold.is_file():
        raise TaoError(f"gold file not found: {gold}")
    store = _open(cfg, "score")
    stats = stage_score(store, cfg, round_)
    out.print(f"score: {stats['groups']} groups; mean {fmt_means(stats.get('mean_score', {}))}; "
              f"abstentions {stats['abstained'] or 0}; groups with no signal {(stats.get('flat_share') or 0):.0%}")
    for name, c in stats.get("scorer_counters", {}).items():
        out.print(f"  {name}: {_fmt_counters(c)}")
    if gold is not None:
        summary = stage_integrity(store, cfg, round_, str(gold))
        out.print(integrity_table(summary))
        out.print(f"→ {cfg.run_dir}/tables/integrity, {cfg.run_dir}/summary/integrity-r{round_}.json")


def _fmt_counters(c: dict) -> str:
    endpoint = c.get("endpoint") or {}
    parts = [f"{k.replace('_', ' ')} {v}" for k, v in c.items() if k != "endpoint"]
    if endpoint:
        parts.append("endpoint " + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" if isinstance(v, float)
                                             else f"{k.replace('_', ' ')} {v}" for k, v in endpoint.items()))
    return "; ".join(parts)


def integrity_table(summary: dict) -> Table:
    """The integrity summary of :func:`opentao.score.integrity.run_integrity` as a rich table."""
    def pct(v):
        return "–" if v is None else f"{v:.0%}"

    def num(v):
        return "–" if v is None else f"{v:.2f}"

    mla = summary.get("majority_label_accuracy")
    tbl = Table(title=f"reward integrity, round {summary['round']}: {summary['groups_with_gold']} of "
                      f"{summary['groups_total']} groups have gold; candidate accuracy "
                      f"{pct(summary.get('candidate_accuracy'))}; majority-vote label accuracy {pct(mla)}")
    for col in ("scorer", "best-of-K acc", "random pick", "pass@K", "AUC", "AUC in group", "zero-var groups",
                "vote label acc", "abstain", "degenerate paid", "verdict"):
        tbl.add_column(col)
    for name, m in summary["scorers"].items():
        tbl.add_row(name if m["role"] != "guard" else f"{name} (guard)", pct(m["best_of_k"]), pct(m["mean_acc"]),
                    pct(m["oracle"]), num(m["auc"]), num(m["auc_within"]), pct(m["zero_var"]), pct(m["vote_acc"]),
                    pct(m["abstain_share"]), str(m.get("degenerate_paid", "–")), m["verdict"])
    return tbl


def train(config: ConfigOpt = None, set_: SetOpt = None, run_dir: RunDirOpt = None, model: ModelOpt = None,
          round_: RoundOpt = 1, force: ForceOpt = False) -> None:
    """Stage 3: train toward high scorers (rft, dpo or grpo; LoRA) and save a merged model folder.

    Runs under `accelerate launch` too (one process per GPU; configs in opentao/configs/accelerate/)."""
    from opentao.pipeline import stage_train

    cfg = _cfg(config, set_, run_dir=run_dir, model=model)
    stats = stage_train(_open(cfg, "train"), cfg, round_, force=force)
    if not _main_process():
        return  # under accelerate launch every rank trains; the main process reports
    out.print(f"train: {stats['examples']} examples, {stats['steps']} steps → {stats['model']} "
              f"({stats['parameters']:,} parameters, same as the base)")


def _main_process() -> bool:
    from opentao.train.distributed import is_main_process

    return is_main_process()


def eval_(
    model: Annotated[str, typer.Option("--model", "-m", help="model to evaluate")] = "bundled",
    task: Annotated[str, typer.Option(help="a registered task: sql | sql-flights | docqa | instruct")] = "sql",
    data: Annotated[Optional[str], typer.Option(help="held-out JSONL with messages + the task's gold fields")] = None,
    db: Annotated[Optional[str], typer.Option(help="SQLite database (sql only)")] = None,
    max_examples: Annotated[Optional[int], typer.Option(help="evaluate only the first N")] = None,
    run_dir: RunDirOpt = None,
    engine: Annotated[str, typer.Option(help="hf | vllm | auto (vllm when installed); compare models under one")] = "hf",
) -> None:
    """Greedy answers on a held-out labeled split; gold metric with a 95% confidence interval."""
    from opentao.evaluate.base import evaluate_task
    from opentao.pipeline import fmt_acc
    from opentao.store import RunStore, ensure_run_dir
    from opentao.tasks import get_task

    if run_dir:
        ensure_run_dir(run_dir, create=False)  # created when the first result is written
    spec = get_task(task)
    if data is None or (spec.needs_db and db is None):
        files = spec.files(spec.prepare())
        data = data or files["test"]
        db = db or files["db"]
    res = evaluate_task(model, data, spec.grader(db), max_examples=max_examples,
                        store=RunStore(run_dir) if run_dir else None, engine=engine)
    out.print(f"{model}: {task} accuracy {fmt_acc(res)}; {res['mean_new_tokens']:.1f} new tokens/answer")


def run(config: Annotated[Path, typer.Argument(help="YAML config")], set_: SetOpt = None,
        run_dir: RunDirOpt = None, force: ForceOpt = False, engine: EngineOpt = None) -> None:
    """A whole TAO run (all rounds) from a config; re-running resumes where it stopped."""
    from opentao.pipeline import run_rounds

    cfg = _cfg(config, set_, run_dir=run_dir, **{"generate.engine": engine})
    t0 = time.perf_counter()
    run_rounds(cfg, report=out.print, force=force)
    out.print(f"done in {time.perf_counter() - t0:.0f} s → {cfg.run_dir}")
    _print_tables(cfg.run_dir)


def quickstart(run_dir: RunDirOpt = None, set_: SetOpt = None, engine: EngineOpt = None) -> None:
    """One TAO round on text-to-SQL over the real Chinook database with the bundled model.

    9–10 min on 2 AVX-512 cores with vLLM, ~25 min on AVX2-only ones (docs/quickstart.md)."""
    from opentao.pipeline import fmt_acc, fmt_change, quickstart_config, run_rounds
    from opentao.store import ensure_run_dir
    from opentao.tasks import get_task

    ensure_run_dir(run_dir or "runs/quickstart", create=False)  # before the download, not after it
    t0 = time.perf_counter()
    sql = get_task("sql")
    task_dir = sql.cache_folder()
    out.print(f"[bold]opentao quickstart[/]: preparing the Chinook text-to-SQL task in {task_dir}")
    sql.prepare(task_dir)
    cfg = quickstart_config(run_dir or "runs/quickstart", task_dir,
                            [*(set_ or []), *([f"generate.engine={engine}"] if engine else [])])
    res = run_rounds(cfg, report=out.print)
    base, tuned = res.get("base"), res["rounds"][-1]["eval"]
    out.print()
    tbl = Table(title="held-out execution accuracy (gold used only here)")
    for col in ("model", "accuracy", "95% CI", "new tokens/answer", "parameters"):
        tbl.add_column(col)
    for name, e in (("base", base), (f"TAO round {cfg.rounds}", tuned)):
        lo, hi = e["ci95"]
        tbl.add_row(name, f"{e['accuracy']:.1%} ({e['correct']}/{e['n']})", f"{lo:.1%}–{hi:.1%}",
                    f"{e['mean_new_tokens']:.1f}", f"{e['parameters']:,}")
    out.print(tbl)
    out.print(f"base {fmt_acc(base)} → tuned {fmt_acc(tuned)}")
    if (change := fmt_change(base, tuned, seed=cfg.seed)) is not None:
        out.print(change)
    out.print(f"wall time {time.perf_counter() - t0:.0f} s; run directory: {cfg.run_dir}")
    _print_tables(cfg.run_dir)


def prepare(task: Annotated[str, typer.Argument(help="task to build: sql | sql-flights | docqa | instruct "
                                                    "(sql-chinook: the old name of sql)")] = "sql",
            out_dir: Annotated[Optional[Path], typer.Option("--out", help="folder for the task files")] = None) -> None:
    """Build a bundled task's files (train prompts without labels, held-out test with gold, the database)."""
    import warnings

    from opentao.tasks import canonical_name, get_task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        name = canonical_name(task)
    for w in caught:
        out.print(f"[yellow]note[/]: {w.message}")
    spec = get_task(name)
    target = spec.prepare(out_dir)
    extra = f", {spec.db_name}" if spec.needs_db and spec.db_name else ""
    out.print(f"task files in {target}: train.jsonl (no labels), train_gold.jsonl, test.jsonl (gold){extra}")


def _print_tables(run_dir: str) -> None:
    from opentao.store import RunStore

    counts = RunStore(run_dir).counts()
    out.print("tables: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def tables(run_dir: Annotated[str, typer.Argument(help="run directory")]) -> None:
    """Row counts of each table in a run directory (query them with DuckDB: RUN/tables/<name>/*.parquet)."""
    if not Path(run_dir).is_dir():
        raise TaoError(f"no run directory at {run_dir}")
    _print_tables(run_dir)


def register(app: typer.Typer) -> None:
    """Add the run and stage verbs to ``app``, in the order ``tao --help`` lists them."""
    app.command()(generate)
    app.command()(score)
    app.command()(train)
    app.command("eval")(eval_)
    app.command()(run)
    app.command()(quickstart)
    app.command()(prepare)
    app.command()(tables)
