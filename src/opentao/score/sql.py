"""The ``sql_exec`` scorer: a candidate's SQL parses, runs read-only and returns a result that answers something.

Model-written SQL is untrusted input; every query runs through :func:`opentao.sqlsafe.run_sql_readonly` (see
:mod:`opentao.sqlsafe` for the layered defences). This module only judges the results.
"""

from __future__ import annotations

import threading
from pathlib import Path

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.sqlsafe import (
    DegenerateChecker, SqlResult, check_sqlite_file, extract_sql, is_whole_table_by, quote_name,
    run_sql_readonly, selects_star,
)

__all__ = ["SqlExecScorer"]


class SqlExecScorer:
    """Scores 1.0 when the candidate's SQL parses, runs read-only, and returns a non-empty, non-truncated,
    non-whole-table, non-degenerate result; else 0.0. It never abstains.

    Degenerate (:mod:`opentao.sqlsafe.degenerate`, on unless ``degenerate=False``): a single all-NULL/zero row,
    or a required string literal that occurs nowhere in its column — an aggregate over an empty match, which
    answers nothing. :meth:`counters` says how many candidates each rule zeroed.

    The SQL is ``candidate.answer`` (already extracted), or ``extract_sql(candidate.response)`` when the
    answer is empty. Identical SQL within a group runs once.

    ``star_score`` (default 1.0: no effect) is the score of a valid query whose outer SELECT lists ``*``
    — a lint rule: a question asks for particular attributes, and ``SELECT *`` answers with all of them.
    """

    def __init__(self, db: str, timeout_s: float = 2.0, max_rows: int = 1000, name: str = "sql_exec",
                 star_score: float = 1.0, degenerate: bool = True) -> None:
        if not isinstance(db, (str, Path)) or not str(db):
            raise TaoError("sql scorer: 'db' must be the path of a SQLite file")
        if timeout_s <= 0 or max_rows < 1:
            raise TaoError("sql scorer: timeout_s must be > 0 and max_rows >= 1")
        check_sqlite_file(db)
        self.db = str(db)
        self.timeout_s = float(timeout_s)
        self.max_rows = int(max_rows)
        self.name = name
        self.star_score = float(star_score)
        self.degenerate = bool(degenerate)
        self._degenerate = DegenerateChecker(
            self.db, lambda q: run_sql_readonly(self.db, q, timeout_s=max(self.timeout_s, 5.0), max_rows=1))
        self._degenerate_counts = {"null_zero_row": 0, "absent_literal": 0}
        self._lock = threading.Lock()
        self._cache: dict[str, SqlResult] = {}
        self._counts: dict[str, int | None] = {}
        self._counts_stamp: tuple[float, int] | None = None

    # -- execution, shared with the majority vote
    def reset_cache(self) -> None:
        """Forget cached results (called at the start of each group)."""
        with self._lock:
            self._cache.clear()

    def execute(self, sql: str) -> SqlResult:
        """Run ``sql`` safely (cached per SQL text until the next :meth:`reset_cache`)."""
        with self._lock:
            hit = self._cache.get(sql)
        if hit is not None:
            return hit
        res = run_sql_readonly(self.db, sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        with self._lock:
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[sql] = res
        return res

    def _count_rows(self, table: str) -> int | None:
        st = Path(self.db).stat()
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._counts_stamp:
                self._counts, self._counts_stamp = {}, stamp
            if table in self._counts:
                return self._counts[table]
        res = run_sql_readonly(self.db, f"SELECT COUNT(*) FROM {quote_name(table)}", timeout_s=max(self.timeout_s, 5.0))
        n = res.rows[0][0] if res.ok and res.rows else None
        with self._lock:
            self._counts[table] = n
        return n

    def check(self, sql: str) -> tuple[SqlResult, str]:
        """Execute and judge: ``(result, "")`` when valid, else ``(result, reason)``."""
        if not sql:
            return SqlResult(ok=False, error="no SQL"), "no SQL"
        res = self.execute(sql)
        if not res.ok:
            return res, res.error or "failed"
        if not res.rows:
            return res, "empty result"
        if res.truncated:
            return res, f"more than {self.max_rows} rows"
        if is_whole_table_by(sql, len(res.rows), self._count_rows):
            return res, "returns a whole table"
        if self.degenerate:
            reason = self._degenerate.reason(sql, res.rows)
            if reason:
                with self._lock:
                    self._degenerate_counts["null_zero_row" if "NULL/zero" in reason else "absent_literal"] += 1
                return res, reason
        return res, ""

    def counters(self) -> dict[str, int]:
        """How many checked candidates each degenerate rule rejected (since construction)."""
        with self._lock:
            return {f"degenerate_{k}": v for k, v in self._degenerate_counts.items()}

    @staticmethod
    def sql_of(candidate: Candidate) -> str:
        """The candidate's SQL: its extracted answer, else whatever can be extracted from its response."""
        return (candidate.answer or "").strip() or extract_sql(candidate.response or "")

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        self.reset_cache()
        scores: list[float | None] = []
        for c in candidates:
            sql = self.sql_of(c)
            valid = not self.check(sql)[1]
            scores.append(0.0 if not valid else self.star_score if selects_star(sql) else 1.0)
        return scores

    def __repr__(self) -> str:
        return f"SqlExecScorer(db={self.db!r}, name={self.name!r})"
