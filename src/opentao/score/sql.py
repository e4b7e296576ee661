"""Label-free SQL verification: extract SQL from a model response, run it safely, compare result sets.

Model-written SQL is **untrusted input**. :func:`run_sql_readonly` layers several independent defences:

1. sqlglot (dialect ``sqlite``) must parse the text as exactly one statement that is a query
   (``SELECT``, ``WITH … SELECT``, or a ``UNION``/``INTERSECT``/``EXCEPT`` of selects), and the tree must
   contain no write/DDL/PRAGMA/ATTACH node;
2. the query runs in a separate worker process (:mod:`opentao.score.sql_sandbox`) under CPU-time,
   address-space and file-size rlimits, killed when it has not answered ``timeout_s`` + 0.5 s after it was sent;
3. there, the database is opened read-only (``file:…?mode=ro`` URI; ``immutable=1`` for a WAL file with no live
   writer, so no ``-wal``/``-shm`` appear) on a fresh connection per call, in autocommit mode, with
   ``PRAGMA query_only=ON`` and ``PRAGMA trusted_schema=OFF`` set by us;
4. SQLite limits: no attached databases, bounded string/blob and SQL text length, temp storage in memory;
5. an authorizer that allows only ``SQLITE_READ``, ``SQLITE_SELECT``, ``SQLITE_FUNCTION`` and
   ``SQLITE_RECURSIVE`` (needed by ``WITH RECURSIVE``; it reads only), and denies dangerous functions
   (``load_extension``, ``readfile``, ``writefile``, …) and file-system virtual tables;
6. a progress handler that interrupts the query after ``timeout_s`` of wall time (fetching included);
7. at most ``max_rows + 1`` rows and ``max_result_bytes`` of values are fetched (``truncated`` tells whether
   there were more rows; too many bytes is an error).

Bad SQL never raises: the result has ``ok=False`` and a short ``error``.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.sql_degenerate import DegenerateChecker
from opentao.score import sql_sandbox
from opentao.score.sql_sandbox import MAX_MEMORY_BYTES, MAX_RESULT_BYTES, MAX_SQL_CHARS
from opentao.tasks.sql import is_whole_table_by

__all__ = ["SqlResult", "SqlExecScorer", "extract_sql", "result_signature", "run_sql_readonly"]

# --------------------------------------------------------------------------------------------- extraction

_FENCE_RE = re.compile(r"```(.*?)(?:```|\Z)", re.DOTALL)
_SQL_LANGS = {"sql", "sqlite", "sqlite3"}
_KEYWORD_RE = re.compile(
    r"\bSELECT\b|\bWITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^()]*\)\s*)?AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\(",
    re.IGNORECASE,
)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")


def _cut_statement(text: str) -> str:
    """Text up to the first ``;`` that is outside quotes and comments (the ``;`` itself dropped)."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = text.find(close, i + 1)
            while j != -1 and close != "]" and j + 1 < n and text[j + 1] == close:  # doubled quote escape
                j = text.find(close, j + 2)
            if j == -1:
                return text
            i = j + 1
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            if j == -1:
                return text
            i = j + 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j == -1:
                return text
            i = j + 2
            continue
        if ch == ";":
            return text[:i]
        i += 1
    return text


def _clean(sql: str) -> str:
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, content) of every ``` block; an unterminated last block runs to the end."""
    blocks = []
    for m in _FENCE_RE.finditer(text):
        body = m.group(1)
        first, nl, rest = body.partition("\n")
        tag = first.strip()
        if nl and (not tag or re.fullmatch(r"[\w+.-]+", tag)) and tag.upper() not in {"SELECT", "WITH"}:
            blocks.append((tag.lower(), rest))
        elif re.match(r"(?i)sql\s", body):
            blocks.append(("sql", body[3:]))
        else:
            blocks.append(("", body))
    return blocks


def _parses_as_query(sql: str) -> bool:
    try:
        trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except Exception:  # noqa: BLE001 - sqlglot raises several error types
        return False
    return len(trees) == 1 and _is_query(trees[0])


def extract_sql(text: str) -> str:
    """Pull one SQL statement out of a model response; "" when there is nothing SQL-like.

    Order: the first ```sql (or ```sqlite) fenced block; else the first ``` block whose content contains
    a query keyword; else the text from the first ``SELECT``/``WITH … AS (`` keyword (case-insensitive)
    to the first ``;`` or blank line or the end. Where several keyword positions exist, the first one that
    parses as a query wins (so prose like "Select the rows …" before the real query is skipped), falling
    back to the first one. The result is stripped and has no trailing ``;``.
    """
    if not text:
        return ""
    blocks = _fenced_blocks(text)
    ordered = [c for lang, c in blocks if lang in _SQL_LANGS] + [c for lang, c in blocks if lang not in _SQL_LANGS]
    for content in ordered:
        if _KEYWORD_RE.search(content):
            sql = _clean(_cut_statement(content))
            if sql:
                return sql
    candidates: list[str] = []
    for m in _KEYWORD_RE.finditer(text):
        rest = text[m.start():]
        blank = _BLANK_LINE_RE.search(rest)
        if blank:
            rest = rest[: blank.start()]
        sql = _clean(_cut_statement(rest).replace("```", ""))
        if sql and sql not in candidates:
            candidates.append(sql)
        if len(candidates) >= 8:
            break
    for sql in candidates:
        if _parses_as_query(sql):
            return sql
    return candidates[0] if candidates else ""


# ---------------------------------------------------------------------------------------------- execution


@dataclass
class SqlResult:
    """Outcome of one read-only query. ``rows`` holds at most ``max_rows`` rows."""

    ok: bool
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    truncated: bool = False
    error: str = ""


_QUERY_TYPES: tuple[type[exp.Expression], ...] = (exp.Select, exp.SetOperation)
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    t
    for t in (
        getattr(exp, name, None)
        for name in (
            "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Pragma", "Attach",
            "Detach", "Transaction", "Commit", "Rollback", "Use", "Set", "Copy", "LoadData", "Analyze",
        )
    )
    if isinstance(t, type)
)

_MAX_SQL_CHARS = MAX_SQL_CHARS


def _is_query(tree: exp.Expression) -> bool:
    while isinstance(tree, exp.Subquery):  # "(SELECT …)"
        tree = tree.this
    if not isinstance(tree, _QUERY_TYPES):
        return False
    return not any(True for _ in tree.find_all(*_FORBIDDEN_NODES))


def _check_query(sql: str) -> str:
    """"" when ``sql`` is exactly one read-only query, else a short reason."""
    if not sql or not sql.strip():
        return "empty SQL"
    if len(sql) > _MAX_SQL_CHARS:
        return "SQL too long"
    try:
        trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except Exception as e:  # noqa: BLE001 - ParseError, TokenError, and the odd internal error
        return "parse error: " + str(e).splitlines()[0][:160]
    if len(trees) != 1:
        return f"expected exactly one statement, got {len(trees)}"
    if not _is_query(trees[0]):
        return f"only SELECT queries are allowed (got {type(trees[0]).__name__.upper()})"
    return ""


def run_sql_readonly(
    db_path: str | Path, sql: str, *, timeout_s: float = 2.0, max_rows: int = 1000,
    max_result_bytes: int = MAX_RESULT_BYTES, max_memory_bytes: int = MAX_MEMORY_BYTES,
) -> SqlResult:
    """Run one untrusted query read-only under hard time, memory and result-size limits; never raises on bad
    SQL (see module doc). Returns within ``timeout_s`` + 0.5 s."""
    reason = _check_query(sql)
    if reason:
        return SqlResult(ok=False, error=reason)
    if not Path(db_path).is_file():
        return SqlResult(ok=False, error=f"database not found: {db_path}")
    ok, columns, rows, truncated, error = sql_sandbox.execute(
        db_path, sql, timeout_s=timeout_s, max_rows=max_rows, max_result_bytes=max_result_bytes,
        max_memory_bytes=max_memory_bytes)
    return SqlResult(ok=ok, columns=columns, rows=rows, truncated=truncated, error=error)


# ---------------------------------------------------------------------------------------------- comparison


def _norm_value(v: Any) -> Any:
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        f = float(v)
        return _norm_value(f) if abs(v) < 2**53 and f == v else v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return v
        r = float(f"{v:.6g}")
        return 0.0 if r == 0 else r
    return v


def result_signature(result: SqlResult) -> str:
    """Order-insensitive hash of a result set (a multiset of rows; column names ignored); "" if not ok.

    Values are normalized first: floats rounded to 6 significant digits, ints compared as floats (so
    ``1`` and ``1.0`` agree), ``None`` kept as is.
    """
    if not result.ok:
        return ""
    keys = sorted(repr(tuple(_norm_value(v) for v in row)) for row in result.rows)
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- the scorer


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def selects_star(sql: str) -> bool:
    """Whether the outermost SELECT projects ``*`` or ``table.*``."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return False
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    return select is not None and any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and
                                      isinstance(e.this, exp.Star)) for e in select.expressions)


def _check_sqlite_file(db: str | Path) -> None:
    path = Path(db)
    if not path.is_file():
        raise TaoError(f"sql scorer: database not found: {path}")
    with path.open("rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise TaoError(f"sql scorer: {path} is not a SQLite database")
    res = run_sql_readonly(path, "SELECT count(*) FROM sqlite_master")
    if not res.ok:
        raise TaoError(f"sql scorer: cannot read {path}: {res.error}")


class SqlExecScorer:
    """Scores 1.0 when the candidate's SQL parses, runs read-only, and returns a non-empty, non-truncated,
    non-whole-table, non-degenerate result; else 0.0. It never abstains.

    Degenerate (:mod:`opentao.score.sql_degenerate`, on unless ``degenerate=False``): a single all-NULL/zero row,
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
        _check_sqlite_file(db)
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
        res = run_sql_readonly(self.db, f"SELECT COUNT(*) FROM {_quote(table)}", timeout_s=max(self.timeout_s, 5.0))
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
