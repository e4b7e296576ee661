#!/usr/bin/env python
"""Did a change move any number? Compare two runs of the same work made by two source trees (e.g. before and
after a refactor, same seed, same machine) and write what differs to a JSON file.

* ``--runs A B`` — two run directories (``tao quickstart``, ``tao run``): every table row for row (all columns,
  rows sorted) and the held-out accuracy of every eval summary;
* ``--results A B`` — two ``benchmarks/results`` folders of ``tao_table.py``: per arm, the eval accuracy and
  per-example correctness, mean new tokens, training examples and final loss.

Usage::

    python benchmarks/same_numbers.py --runs BEFORE/runs/quickstart AFTER/runs/quickstart --out results/x.json
    python benchmarks/same_numbers.py --results BEFORE/benchmarks/results benchmarks/results --mode quick --out ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TABLES = ("prompts", "candidates", "scores", "train_examples", "eval_results")


def table_rows(run_dir: Path, table: str) -> list[tuple]:
    import pyarrow.parquet as pq

    rows = []
    for part in sorted((run_dir / "tables" / table).glob("part-*.parquet")):
        rows.extend(tuple(sorted(r.items())) for r in pq.read_table(part).to_pylist())
    return sorted(rows, key=repr)


def compare_runs(a: Path, b: Path) -> dict:
    tables = {}
    for t in TABLES:
        ra, rb = table_rows(a, t), table_rows(b, t)
        tables[t] = {"rows_before": len(ra), "rows_after": len(rb), "identical": ra == rb}
    evals = {}
    for p in sorted((a / "summary").glob("eval-*.json")):
        q = b / "summary" / p.name
        ea = json.loads(p.read_text(encoding="utf-8"))
        eb = json.loads(q.read_text(encoding="utf-8")) if q.is_file() else None
        evals[p.stem] = {"before": f"{ea['correct']}/{ea['n']}", "after": f"{eb['correct']}/{eb['n']}" if eb else None,
                         "accuracy_before": ea["accuracy"], "accuracy_after": eb["accuracy"] if eb else None,
                         "per_example_identical": bool(eb) and ea["per_example"] == eb["per_example"]}
    same = all(v["identical"] for v in tables.values()) and all(v["per_example_identical"] for v in evals.values())
    return {"before": str(a), "after": str(b), "tables": tables, "evals": evals, "all_identical": same}


def compare_results(a: Path, b: Path, mode: str) -> dict:
    arms = {}
    for p in sorted(a.glob(f"{mode}-*.json")):
        q, name = b / p.name, p.stem.removeprefix(f"{mode}-")
        if not q.is_file():
            arms[name] = {"after": "missing"}
            continue
        da, db = json.loads(p.read_text(encoding="utf-8")), json.loads(q.read_text(encoding="utf-8"))
        if "evals" not in da:
            continue
        ta, tb = da.get("train") or {}, db.get("train") or {}
        entry = {"train_examples": [ta.get("examples"), tb.get("examples")],
                 "last_loss": [ta.get("last_loss"), tb.get("last_loss")], "evals": {}}
        for task, ea in da["evals"].items():
            eb = db["evals"].get(task)
            entry["evals"][task] = {
                "accuracy": [ea["accuracy"], eb["accuracy"] if eb else None],
                "mean_new_tokens": [ea["mean_new_tokens"], eb["mean_new_tokens"] if eb else None],
                "per_example_identical": bool(eb) and ea["per_example"] == eb["per_example"]}
        entry["identical"] = (entry["train_examples"][0] == entry["train_examples"][1]
                              and entry["last_loss"][0] == entry["last_loss"][1]
                              and all(e["per_example_identical"] and e["mean_new_tokens"][0] == e["mean_new_tokens"][1]
                                      for e in entry["evals"].values()))
        arms[name] = entry
    return {"before": str(a), "after": str(b), "mode": mode, "arms": arms,
            "all_identical": bool(arms) and all(v.get("identical") for v in arms.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--runs", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    g.add_argument("--results", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--note", default="", help="what was compared (stored in the JSON)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    pair = args.runs or args.results
    for p in pair:
        if not p.is_dir():
            print(f"error: not a folder: {p}", file=sys.stderr)
            return 2
    res = compare_runs(*pair) if args.runs else compare_results(*pair, args.mode)
    res["note"] = args.note
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"all identical: {res['all_identical']} → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
