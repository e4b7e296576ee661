"""Gold metric of text-to-SQL: execution accuracy.

A prediction is correct when its SQL, extracted from the answer and run read-only (:mod:`opentao.sqlsafe`),
returns the same result set as the gold SQL (order-insensitive multiset of rows, column names ignored — the
usual execution-accuracy metric of Spider/BIRD).
"""

from __future__ import annotations

from pathlib import Path

from opentao.errors import TaoError
from opentao.sqlsafe import SqlResult, extract_sql, result_signature, run_sql_readonly

__all__ = ["GOLD_FIELDS", "SqlGrader", "grade"]

GOLD_FIELDS = ("sql",)


def grade(db: str, prediction_sql: str, gold_sql: str) -> tuple[bool, str]:
    """(correct, reason when wrong) of already-extracted SQL against the gold SQL on ``db``."""
    return SqlGrader(db).grade_sql(prediction_sql, gold_sql)[:2]


class SqlGrader:
    """Execution accuracy on one database: the SQL extracted from the answer returns the gold result set.

    The gold result signature is computed once per gold query (the database is read-only to us)."""

    task = "sql"
    gold_fields = GOLD_FIELDS

    def __init__(self, db: str | Path) -> None:
        if not db or not Path(db).is_file():
            raise TaoError(f"database not found: {db}")
        self.db = str(db)
        self._gold_sig: dict[str, str] = {}

    def gold_signature(self, gold_sql: str) -> str:
        if gold_sql not in self._gold_sig:
            gold = run_sql_readonly(self.db, gold_sql)
            if not gold.ok:
                raise TaoError(f"gold SQL fails on {self.db}: {gold.error}: {gold_sql}")
            self._gold_sig[gold_sql] = result_signature(gold)
        return self._gold_sig[gold_sql]

    def grade_sql(self, prediction_sql: str, gold_sql: str) -> tuple[bool, str, SqlResult | None]:
        """``(correct, reason when wrong, the prediction's result or None when there was no SQL)``."""
        gold_sig = self.gold_signature(gold_sql)
        if not prediction_sql:
            return False, "no SQL in the answer", None
        pred = run_sql_readonly(self.db, prediction_sql)
        if not pred.ok:
            return False, pred.error[:200], pred
        return result_signature(pred) == gold_sig, "", pred

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]:
        return self.grade_sql(extract_sql(prediction), row["sql"])[:2]
