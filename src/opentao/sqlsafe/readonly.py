"""Label-free SQL verification: extract SQL from a model response, run it safely, compare result sets.

Model-written SQL is **untrusted input**. :func:`run_sql_readonly` layers several independent defences:

1. sqlglot (dialect ``sqlite``) must parse the text as exactly one statement that is a query
   (``SELECT``, ``WITH … SELECT``, or a ``UNION``/``INTERSECT``/``EXCEPT`` of selects), and the tree must
   contain no write/DDL/PRAGMA/ATTACH node;
2. the query runs in a separate worker process (:mod:`opentao.sqlsafe.sandbox`) under CPU-time,
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from opentao.errors import TaoError
from opentao.sqlsafe import sandbox
from opentao.sqlsafe.sandbox import MAX_MEMORY_BYTES, MAX_RESULT_BYTES, MAX_SQL_CHARS

__all__ = ["SqlResult", "check_sqlite_file", "quote_name", "result_signature", "run_sql_readonly", "selects_star"]

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
    ok, columns, rows, truncated, error = sandbox.execute(
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


# ------------------------------------------------------------------------------------------------ lints


def quote_name(name: str) -> str:
    """An identifier always double-quoted (quotes doubled): safe to paste into generated SQL."""
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


def check_sqlite_file(db: str | Path) -> None:
    """TaoError unless ``db`` is an existing, readable SQLite file (checked through the sandbox)."""
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
