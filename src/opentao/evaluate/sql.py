"""Held-out evaluation for text-to-SQL: execution accuracy with a 95% confidence interval.

This is the only place gold SQL is read. A prediction is correct when its SQL, extracted from the greedy
answer and run read-only, returns the same result set as the gold SQL (order-insensitive multiset of rows,
column names ignored — the usual execution-accuracy metric of Spider/BIRD).
"""

from __future__ import annotations

from pathlib import Path

from opentao.errors import TaoError
from opentao.evaluate.base import evaluate_task, load_eval_rows, safe_label, wilson_ci
from opentao.score.sql import extract_sql, result_signature, run_sql_readonly

__all__ = ["SqlEvaluator", "evaluate_sql", "grade", "load_eval_set", "safe_label", "wilson_ci"]


def load_eval_set(path: str | Path, max_examples: int | None = None) -> list[dict]:
    return load_eval_rows(path, ("sql",), "sql", max_examples)


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


class SqlEvaluator:
    """Execution accuracy on one database: the SQL extracted from the answer returns the gold result set."""

    task = "sql"
    gold_fields = ("sql",)

    def __init__(self, db: str | Path) -> None:
        if not db or not Path(db).is_file():
            raise TaoError(f"database not found: {db}")
        self.db = str(db)

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]:
        return grade(self.db, extract_sql(prediction), row["sql"])


def evaluate_sql(model: str, data: str | Path, db: str, **kwargs) -> dict:
    """Greedy answers on the held-out split → execution accuracy (+ Wilson 95% CI), tokens and latency.

    Keyword arguments are those of :func:`opentao.evaluate.base.evaluate_task` (label, max_examples, batch_size,
    max_new_tokens, stop, store, round_, dtype, device)."""
    return evaluate_task(model, data, SqlEvaluator(db), **kwargs)
