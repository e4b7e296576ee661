"""Parsing checks on SQL text (sqlglot, dialect ``sqlite``): identifier quoting, the tables a query reads, and
whether a query merely dumps a whole table (no filter or aggregate doing work).

Used by the ``sql_exec`` scorer on untrusted model SQL and by the question generators on their own SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

__all__ = ["is_whole_table", "is_whole_table_by", "quote_ident", "tables_read"]


def quote_ident(name: str) -> str:
    """Quote an identifier only when it needs it (keeps DDL and generated SQL compact)."""
    if name.isidentifier() and name.isascii() and name.upper() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


_RESERVED = {
    "ADD", "ALL", "ALTER", "AND", "AS", "ASC", "BETWEEN", "BY", "CASE", "CHECK", "COLLATE", "COLUMN",
    "CONSTRAINT", "CREATE", "CROSS", "DEFAULT", "DELETE", "DESC", "DISTINCT", "DROP", "ELSE", "END",
    "EXCEPT", "EXISTS", "FOREIGN", "FROM", "FULL", "GROUP", "HAVING", "IN", "INDEX", "INNER", "INSERT",
    "INTERSECT", "INTO", "IS", "JOIN", "KEY", "LEFT", "LIMIT", "NATURAL", "NOT", "NULL", "OFFSET", "ON",
    "OR", "ORDER", "OUTER", "PRIMARY", "REFERENCES", "RIGHT", "SELECT", "SET", "TABLE", "THEN", "TO",
    "UNION", "UNIQUE", "UPDATE", "USING", "VALUES", "WHEN", "WHERE", "WITH",
}


def tables_read(sql: str) -> list[str]:
    """Names of the base tables a query reads (CTE names excluded), via sqlglot; [] if it does not parse."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return []
    if tree is None:
        return []
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    names: list[str] = []
    for t in tree.find_all(exp.Table):
        if t.name and t.name not in ctes and t.name not in names:
            names.append(t.name)
    return names


def _does_work(tree: exp.Expression) -> bool:
    """True when the query filters, limits, groups or aggregates anywhere."""
    kinds = (exp.Where, exp.Having, exp.Limit, exp.Group, exp.AggFunc)
    return any(True for _ in tree.find_all(*kinds))


def is_whole_table_by(sql: str, n_rows: int, count_rows: Callable[[str], int | None]) -> bool:
    """Whether ``sql`` just returns an entire table.

    True when the query has no WHERE / HAVING / LIMIT / GROUP BY / aggregate and its result row count
    ``n_rows`` equals the row count of one of the tables it reads (``count_rows(table)``, None if unknown).
    A query that does not parse is never called whole-table here (the caller rejects it otherwise).
    """
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return False
    if tree is None or _does_work(tree):
        return False
    return any(count_rows(table) == n_rows for table in tables_read(sql))


def is_whole_table(conn: sqlite3.Connection, sql: str, rows: Sequence[Any] | int) -> bool:
    """:func:`is_whole_table_by` with table sizes counted on ``conn``; ``rows`` is the result or its count."""

    def count(table: str) -> int | None:
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {quote_ident(table)}").fetchone()[0]
        except sqlite3.Error:
            return None

    return is_whole_table_by(sql, rows if isinstance(rows, int) else len(rows), count)
