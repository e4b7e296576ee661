"""Held-out evaluation for text-to-SQL: execution accuracy with a 95% confidence interval.

This is the only place gold SQL is read. A prediction is correct when its SQL, extracted from the greedy
answer and run read-only, returns the same result set as the gold SQL (order-insensitive multiset of rows,
column names ignored — the usual execution-accuracy metric of Spider/BIRD).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

from opentao.data import read_table_rows
from opentao.errors import TaoError
from opentao.generate.hf import GenRequest, HFGenerator
from opentao.models import load_model
from opentao.progress import progress_bar
from opentao.records import EvalResult
from opentao.score.sql import extract_sql, result_signature, run_sql_readonly
from opentao.store import RunStore


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_eval_set(path: str | Path, max_examples: int | None = None) -> list[dict]:
    rows = read_table_rows(path)
    if not rows:
        raise TaoError(f"{path}: the eval set is empty")
    for i, r in enumerate(rows, 1):
        if "sql" not in r or "messages" not in r:
            raise TaoError(f"{path}: row {i}: an eval row needs 'messages' and gold 'sql'")
    return rows[:max_examples] if max_examples else rows


def grade(db: str, prediction_sql: str, gold_sql: str) -> tuple[bool, str]:
    gold = run_sql_readonly(db, gold_sql)
    if not gold.ok:
        raise TaoError(f"gold SQL fails on {db}: {gold.error}: {gold_sql}")
    if not prediction_sql:
        return False, "no SQL in the answer"
    pred = run_sql_readonly(db, prediction_sql)
    if not pred.ok:
        return False, pred.error[:200]
    return result_signature(pred) == result_signature(gold), ""


def safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80]


def evaluate_sql(
    model: str,
    data: str | Path,
    db: str,
    *,
    label: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 128,
    stop: tuple[str, ...] = (),
    store: RunStore | None = None,
    round_: int = 0,
    dtype: str = "auto",
    device: str = "auto",
) -> dict:
    """Greedy answers on the held-out split → execution accuracy (+ Wilson 95% CI), tokens and latency."""
    if not Path(db).is_file():
        raise TaoError(f"database not found: {db}")
    rows = load_eval_set(data, max_examples)
    label = label or model
    key = f"r{round_}-{safe_label(label)}"
    if store is not None and store.has_part("eval_results", key):
        done = store.read_summary(f"eval-{key}")
        if done:
            return done
    lm, tok = load_model(model, dtype=dtype, device=device)
    gen = HFGenerator(lm, tok, batch_size=batch_size)
    requests = [GenRequest(r["messages"], 0.0, max_new_tokens, stop=tuple(stop)) for r in rows]
    outputs = []
    t0 = time.perf_counter()
    with progress_bar(f"eval {label}", total=len(rows)) as advance:
        for start in range(0, len(requests), batch_size):
            outputs.extend(gen.generate(requests[start : start + batch_size]))
            advance(len(outputs) - start)
    seconds = time.perf_counter() - t0
    results = []
    for r, out in zip(rows, outputs):
        sql = extract_sql(out.text)
        ok, err = grade(db, sql, r["sql"])
        results.append(EvalResult(label, str(r.get("id", "")), out.text, ok, round_, out.num_tokens, err))
    k, n = sum(e.correct for e in results), len(results)
    lo, hi = wilson_ci(k, n)
    summary = {
        "model": label,
        "model_path": model,
        "n": n,
        "correct": k,
        "accuracy": k / n,
        "ci95": [lo, hi],
        "mean_new_tokens": sum(e.num_tokens for e in results) / n,
        "seconds": seconds,
        "seconds_per_request": seconds / n,
        "parameters": sum(p.numel() for p in lm.parameters()),
    }
    if store is not None:
        store.write_part("eval_results", key, results, EvalResult.SCHEMA)
        store.write_summary(f"eval-{key}", summary)
    return summary
