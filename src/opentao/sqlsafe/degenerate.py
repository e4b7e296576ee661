"""Degenerate-but-valid SQL: queries that parse, run and return rows, yet answer nothing.

A 135M model quickly learns that an aggregate over an empty match still returns one row:
``SELECT COUNT(*) FROM t WHERE col = '<a value that does not exist>'`` gives ``[(0,)]`` and
``SELECT MAX(x) FROM t WHERE <nothing matches>`` gives ``[(NULL,)]``. An execution-based reward that pays for
"non-empty" pays for these non-answers, and a result-set vote agrees on them (every such query returns the
same ``0``). Two checks, each cheap and label-free:

* **null/zero row** — the result is a single row whose every value is NULL, 0 or the empty string. (A real
  answer can be 0 — "how many customers live in Antarctica?" — but a question about an empty set is rare in a
  task's prompts, while the non-answer is what the reward was being gamed with; we accept that trade.)
* **absent literal** — a string literal compared to a column (``col = 'x'``, ``'x' = col``, ``col LIKE 'x'``,
  ``col IN ('x', 'y')``, in ``WHERE``/``ON``/``HAVING``) matches no row of that column in the database. The
  check runs one small query per (table, column, operator, literal) through
  :func:`opentao.sqlsafe.run_sql_readonly`, built by sqlglot so the literal is quoted by the generator, never
  pasted into SQL text. Only predicates that must hold for a row to be returned are checked (those under ``OR``
  or ``NOT`` are skipped: ``a = 'x' OR b = 'y'`` can match without 'x' existing), a column is resolved to its
  table through the query's table aliases (unqualified: the only table of the query that has the column; if
  several have it, the literal must be absent from all of them), and columns of CTEs or subqueries are skipped.

:class:`DegenerateChecker` caches per literal and per table schema for the life of the object; the database is
read-only to us, so a cache entry only goes stale when the file changes (checked by mtime and size).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

__all__ = ["DegenerateChecker", "is_null_zero_row", "literal_predicates"]

Runner = Callable[[str], Any]  # sql -> SqlResult (ok, columns, rows)


def is_null_zero_row(rows: list[tuple]) -> bool:
    """One row whose every value is NULL, 0 (0.0, False) or "" — an aggregate over an empty match."""
    if len(rows) != 1 or not rows[0]:
        return False
    return all(v is None or v == "" or (isinstance(v, (int, float)) and v == 0) for v in rows[0])


def _under_or_not(node: exp.Expression, stop: exp.Expression) -> bool:
    parent = node.parent
    while parent is not None and parent is not stop:
        if isinstance(parent, (exp.Or, exp.Not, exp.Xor, exp.Case, exp.If)):
            return True
        parent = parent.parent
    return False


def _string_literal(node: exp.Expression) -> str | None:
    return node.this if isinstance(node, exp.Literal) and node.is_string else None


def literal_predicates(tree: exp.Expression) -> list[tuple[exp.Column, str, list[str]]]:
    """``(column, operator, literals)`` for every column-vs-string-literal predicate that must hold.

    ``operator`` is ``"="`` or ``"LIKE"``; ``IN`` gives its string literals (the predicate fails only when none
    matches). Predicates under OR/NOT/CASE are left out (see the module doc).
    """
    out: list[tuple[exp.Column, str, list[str]]] = []
    clauses = [n for n in tree.find_all(exp.Where, exp.Having)]
    clauses += [j.args["on"] for j in tree.find_all(exp.Join) if j.args.get("on") is not None]
    for clause in clauses:
        for node in clause.find_all(exp.EQ, exp.Like, exp.In):
            if _under_or_not(node, clause):
                continue
            if isinstance(node, exp.In):
                col = node.this
                lits = [s for e in node.expressions if (s := _string_literal(e)) is not None]
                if isinstance(col, exp.Column) and lits and len(lits) == len(node.expressions):
                    out.append((col, "IN", lits))
                continue
            left, right = node.this, node.expression
            if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
                left, right = right, left
            lit = _string_literal(right)
            if isinstance(left, exp.Column) and lit is not None:
                out.append((left, "LIKE" if isinstance(node, exp.Like) else "=", [lit]))
    return out


def _table_names(tree: exp.Expression) -> tuple[dict[str, str], set[str]]:
    """alias-or-name (lowercase) → real table name, and the lowercase names of the query's CTEs."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    aliases: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        if not t.name or t.name.lower() in ctes:
            continue
        aliases[t.alias_or_name.lower()] = t.name
        aliases.setdefault(t.name.lower(), t.name)
    return aliases, ctes


class DegenerateChecker:
    """Finds degenerate-but-valid results of queries on one SQLite file (see the module doc).

    ``run`` executes trusted, generated SQL read-only and returns an object with ``ok``, ``columns``, ``rows``
    (in practice ``lambda sql: run_sql_readonly(db, sql)``).
    """

    def __init__(self, db: str | Path, run: Runner) -> None:
        self.db = Path(db)
        self._run = run
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._columns: dict[str, set[str] | None] = {}
        self._matches: dict[tuple[str, str, str, str], bool | None] = {}

    def _fresh(self) -> None:
        st = self.db.stat()
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._stamp, self._columns, self._matches = stamp, {}, {}

    def columns_of(self, table: str) -> set[str] | None:
        """Lowercase column names of a real table; None when it cannot be read (not a table here)."""
        with self._lock:
            self._fresh()
            if table.lower() in self._columns:
                return self._columns[table.lower()]
        sql = exp.select("*").from_(exp.to_table(table, quoted=True)).limit(0).sql("sqlite")
        res = self._run(sql)
        cols = {c.lower() for c in res.columns} if res.ok else None
        with self._lock:
            self._columns[table.lower()] = cols
        return cols

    def matches(self, table: str, column: str, op: str, literal: str) -> bool | None:
        """Whether some row of ``table`` satisfies ``column <op> literal``; None when that cannot be checked."""
        key = (table.lower(), column.lower(), op, literal)
        with self._lock:
            self._fresh()
            if key in self._matches:
                return self._matches[key]
        col = exp.column(column, quoted=True)
        lit = exp.Literal.string(literal)
        cond = exp.Like(this=col, expression=lit) if op == "LIKE" else exp.EQ(this=col, expression=lit)
        sql = exp.select("1").from_(exp.to_table(table, quoted=True)).where(cond).limit(1).sql("sqlite")
        res = self._run(sql)
        found = bool(res.rows) if res.ok else None
        with self._lock:
            self._matches[key] = found
        return found

    def absent(self, sql: str) -> list[str]:
        """Readable ``table.column = 'literal'`` for every required literal that matches nothing in its column."""
        try:
            tree = sqlglot.parse_one(sql, read="sqlite")
        except Exception:  # noqa: BLE001 - sqlglot raises several error types; unparsable = nothing to check
            return []
        if tree is None:
            return []
        aliases, ctes = _table_names(tree)
        out = []
        for col, op, lits in literal_predicates(tree):
            qual = col.table.lower()
            if qual:
                if qual in ctes or qual not in aliases:
                    continue
                tables = [aliases[qual]]
            else:
                tables = sorted(set(aliases.values()))
            tables = [t for t in tables if col.name.lower() in (self.columns_of(t) or set())]
            if not tables:
                continue
            checks = [self.matches(t, col.name, "=" if op == "IN" else op, lit) for t in tables for lit in lits]
            if None in checks:
                continue
            if not any(checks):
                shown = ", ".join(repr(v) for v in lits)
                out.append(f"{'/'.join(tables)}.{col.name} {op} {shown}")
        return out

    def reason(self, sql: str, rows: list[tuple]) -> str:
        """"" when the (valid, non-empty) result looks like an answer, else why it is degenerate."""
        if is_null_zero_row(rows):
            return "degenerate: a single all-NULL/zero row"
        missing = self.absent(sql)
        if missing:
            return "degenerate: literal not in its column: " + "; ".join(missing)[:200]
        return ""
