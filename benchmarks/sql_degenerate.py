"""How many kept SQL training answers are degenerate-but-valid, before and after the SQL reward stopped paying for them.

"Before" reads a finished round as it is (default: the quickstart run of ``/work/runs-shared/quickstart``, copied
into ``WORK/before``; the run itself is only read): its ``tables/candidates`` and the ``tables/train_examples`` its
scores selected — or, while the round has no examples yet (generation still running) or with ``--old-reward``,
its candidates rescored by the same scorers with ``degenerate: false`` (the old reward). "After" copies the run's prompts and
candidates (no generation) into a work directory, rescores them with the current scorers (``sql_exec`` and the
``sql_result`` vote now zero degenerate results: :mod:`opentao.sqlsafe.degenerate`) and rebuilds the training
examples with the same ``train`` settings. Each kept answer is classified by the same checker (an all-NULL/zero
single row; a required literal absent from its column) and graded against ``train_gold.jsonl`` (diagnostic only:
gold is never used for scoring or selection), so the JSON also says whether real answers were lost; with gold,
the integrity report of both (``degenerate_paid`` per scorer) is included, and ``checker_on_gold`` counts the
task's gold queries (train and test) that the checker would call degenerate: its false positives.

    PYTHONPATH=src python benchmarks/sql_degenerate.py [--run DIR] [--work DIR] [--gold FILE]
    PYTHONPATH=src python benchmarks/sql_degenerate.py --gold-only      # false positives on the gold queries
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULT = ROOT / "benchmarks" / "results" / "sql_degenerate.json"
GOLD_RESULT = ROOT / "benchmarks" / "results" / "sql_degenerate_gold.json"


def classify(store, db: str, gold: dict[str, str], round_: int) -> dict:
    """Kept answers of the round: how many, how many degenerate (by rule), how many gold-correct."""
    from opentao.records import Candidate, TrainExample
    from opentao.score.sql import SqlExecScorer
    from opentao.sqlsafe import DegenerateChecker, is_null_zero_row, result_signature, run_sql_readonly

    checker = DegenerateChecker(db, lambda q: run_sql_readonly(db, q, timeout_s=5.0, max_rows=1))
    cands = {c["candidate_id"]: Candidate.from_row(c) for c in store.read("candidates", round_)}
    kept = [TrainExample.from_row(r) for r in store.read("train_examples", round_)]
    gold_sig: dict[str, str] = {}
    out = {"kept": len(kept), "prompts": len({e.prompt_id for e in kept}), "degenerate": 0, "null_zero_row": 0,
           "absent_literal": 0, "gold_correct": 0, "degenerate_gold_correct": 0, "examples": []}
    for e in kept:
        sql = SqlExecScorer.sql_of(cands[e.chosen_id])
        res = run_sql_readonly(db, sql)
        null_zero = res.ok and is_null_zero_row(res.rows)
        absent = checker.absent(sql) if res.ok else []
        correct = False
        if e.prompt_id in gold and res.ok:
            g = gold[e.prompt_id]
            if g not in gold_sig:
                gold_sig[g] = result_signature(run_sql_readonly(db, g))
            correct = result_signature(res) == gold_sig[g]
        degenerate = bool(null_zero or absent)
        out["degenerate"] += degenerate
        out["null_zero_row"] += bool(null_zero)
        out["absent_literal"] += bool(absent)
        out["gold_correct"] += correct
        out["degenerate_gold_correct"] += degenerate and correct
        if degenerate:
            out["examples"].append({"prompt_id": e.prompt_id, "sql": sql, "rows": [list(r) for r in res.rows[:3]],
                                    "absent": absent, "gold_correct": correct})
    return out


def gold_flagged(db: str, path: Path) -> dict:
    """False positives of the checker: how many of a file's gold queries it calls degenerate."""
    from opentao.data import read_table_rows
    from opentao.sqlsafe import DegenerateChecker, run_sql_readonly

    checker = DegenerateChecker(db, lambda q: run_sql_readonly(db, q, timeout_s=5.0, max_rows=1))
    rows = [r for r in read_table_rows(str(path)) if isinstance(r.get("sql"), str)]
    flagged = []
    for r in rows:
        res = run_sql_readonly(db, r["sql"])
        if res.ok and res.rows and (why := checker.reason(r["sql"], res.rows)):
            flagged.append({"sql": r["sql"], "why": why})
    return {"file": str(path), "gold_queries": len(rows), "flagged": len(flagged), "examples": flagged[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=Path("/work/runs-shared/quickstart"))
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "runs" / "sql-degenerate")
    ap.add_argument("--gold", type=Path, default=None, help="gold SQL of the training prompts (diagnostic only)")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help=f"default {RESULT.name} (--gold-only: {GOLD_RESULT.name})")
    ap.add_argument("--old-reward", action="store_true",
                    help="build 'before' by rescoring with the degenerate check off, even if the run has examples")
    ap.add_argument("--gold-only", action="store_true",
                    help="only count the checker's false positives on the bundled Chinook task's gold queries")
    args = ap.parse_args()
    if args.gold_only:
        from opentao.tasks import get_task

        task = get_task("sql").prepare()
        out = args.out or GOLD_RESULT
        res = {"what": "gold queries of the Chinook task that the degenerate checker flags (false positives)",
               "checker_on_gold": [gold_flagged(str(task / "chinook.sqlite"), task / f)
                                   for f in ("train_gold.jsonl", "test.jsonl")],
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        out.write_text(json.dumps(res, indent=1) + "\n")
        print("; ".join(f"{Path(g['file']).name}: {g['flagged']} of {g['gold_queries']} flagged"
                        for g in res["checker_on_gold"]) + f" → {out}")
        return
    args.out = args.out or RESULT

    from opentao.config import load_config
    from opentao.data import read_table_rows
    from opentao.pipeline import stage_score
    from opentao.score.integrity import run_integrity
    from opentao.store import RunStore
    from opentao.train.stage import examples_for_round

    cfg = load_config(args.run / "config.yaml")
    gold_path = args.gold or Path(cfg.prompts).with_name("train_gold.jsonl")
    gold = {str(r["id"]): r["sql"] for r in read_table_rows(str(gold_path))} if gold_path.is_file() else {}
    shutil.rmtree(args.work, ignore_errors=True)
    # "before": a copy of the finished round as it is (the run directory is never written to) or, when the round
    # has no training examples yet (--old-reward, or generation still running), its candidates rescored with the
    # old reward: the same scorers with the degenerate check off
    finished = (args.run / "tables" / "train_examples").is_dir() and not args.old_reward
    for table in ("prompts", "candidates", *(("scores", "train_examples") if finished else ())):
        shutil.copytree(args.run / "tables" / table, args.work / "before" / "tables" / table)
    before_store = RunStore(args.work / "before")
    if not finished:
        old = [{**sp, "degenerate": False} if sp.get("type") in ("sql_exec", "majority_vote", "soft_vote")
               and (sp.get("type") == "sql_exec" or sp.get("mode") == "sql_result") else sp for sp in cfg.score.scorers]
        old_cfg = load_config(args.run / "config.yaml", run_dir=str(args.work / "before"))
        old_cfg.score.scorers = old
        stage_score(before_store, old_cfg, args.round)
        examples_for_round(before_store, old_cfg.train, args.round)
    before = classify(before_store, cfg.db, gold, args.round)
    # "after": the same prompts and candidates, rescored by the current scorers, examples rebuilt
    for table in ("prompts", "candidates"):
        shutil.copytree(args.run / "tables" / table, args.work / "after" / "tables" / table)
    cfg = load_config(args.run / "config.yaml", run_dir=str(args.work / "after"))
    store = RunStore(args.work / "after")
    t0 = time.perf_counter()
    score = stage_score(store, cfg, args.round)
    examples_for_round(store, cfg.train, args.round)
    rescore_s = round(time.perf_counter() - t0, 1)
    after = classify(store, cfg.db, gold, args.round)
    integrity = {}
    if gold:  # diagnostic: how many degenerate candidates each reward paid for, and each reward's verdict
        for label, st in (("before", before_store), ("after", store)):
            summ = run_integrity(st, str(gold_path), round_=args.round, db=cfg.db)
            integrity[label] = {"degenerate_candidates": summ["degenerate_candidates"],
                                "degenerate_correct": summ["degenerate_correct"],
                                "scorers": {n: {k: m[k] for k in ("degenerate_paid", "auc", "best_of_k", "mean_acc",
                                                                  "verdict")} for n, m in summ["scorers"].items()}}
    result = {
        "what": "kept rft training answers of one round that are degenerate-but-valid SQL, before vs after",
        "run": str(args.run), "round": args.round, "db": cfg.db, "gold": str(gold_path) if gold else None,
        "scorers": cfg.score.scorers, "train": {"method": cfg.train.method, "threshold": cfg.train.threshold,
                                                "max_per_prompt": cfg.train.max_per_prompt},
        "candidates": before_store.count("candidates"),
        "groups": len({c["prompt_id"] for c in before_store.read("candidates", args.round)}),
        "before_from": "the run's own scores and examples" if finished else "rescored with degenerate: false",
        "before": before, "after": after, "integrity": integrity,
        "checker_on_gold": [gold_flagged(cfg.db, f) for f in (gold_path, Path(cfg.prompts).with_name("test.jsonl"))
                            if f.is_file()],
        "rescore": {"wall_s": rescore_s, "scorer_counters": score.get("scorer_counters"),
                    "mean_score": score.get("mean_score")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"kept {before['kept']} → {after['kept']}; degenerate {before['degenerate']} → {after['degenerate']}; "
          f"gold-correct {before['gold_correct']} → {after['gold_correct']} → {args.out}")


if __name__ == "__main__":
    main()
