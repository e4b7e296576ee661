"""Generic text-to-SQL task helpers that work on any SQLite database.

* :func:`schema_ddl` renders a compact ``CREATE TABLE`` line per table (column types, primary keys and
  foreign-key ``REFERENCES``), read through a read-only connection, for use inside prompts.
* :func:`sql_prompt_messages` builds the plain single-message prompt the model is tuned to answer.
* :func:`~opentao.sqlsafe.is_whole_table` (re-exported) tells whether a query merely dumps a table, which
  question generators and scorers use to reject degenerate SQL.
* :func:`read_schema` profiles every table (row count, foreign keys, each column's kind and distinct
  values) for question generators; :func:`words`, :func:`plural` and :func:`sql_literal` help them
  write questions and SQL.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.records import Message
from opentao.sqlsafe.parse import is_whole_table, is_whole_table_by, quote_ident, tables_read

__all__ = ["ColumnInfo", "PROMPT_TEMPLATE", "TableInfo", "connect_readonly", "foreign_keys_of", "is_whole_table",
           "is_whole_table_by", "list_tables", "plural", "primary_key_of", "quote_ident", "read_schema",
           "schema_ddl", "sql_literal", "sql_prompt_messages", "tables_read", "words"]

PROMPT_TEMPLATE = (
    "Database schema:\n{schema}\n\n"
    "Write one SQLite query that answers the question. Reply with only the SQL.\n"
    "Question: {question}"
)


def sql_literal(value: Any) -> str:
    """A Python value as a SQLite literal: 'text' with quotes doubled, numbers as written (1.0 → 1)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    s = repr(value)
    return s[:-2] if isinstance(value, float) and s.endswith(".0") else s


def words(name: str) -> str:
    """An identifier as lower-case words: ``media_type`` → "media type", ``UnitPrice`` → "unit price"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").strip().lower()


def plural(phrase: str) -> str:
    """Pluralize an English noun phrase: the word before " in "/" of " if any, else the last word."""
    head, sep, rest = phrase.partition(" in ") if " in " in phrase else phrase.partition(" of ")
    *first, w = head.split(" ")
    ending = "es" if re.search(r"(s|x|z|ch|sh)$", w) else "s"
    w = w[:-1] + "ies" if re.search(r"[^aeiou]y$", w) else w + ending
    return " ".join([*first, w]) + sep + rest


def connect_readonly(db_path: str | Path) -> sqlite3.Connection:
    """Open an existing SQLite file read-only; TaoError if it is missing or not a SQLite database."""
    path = Path(db_path)
    if not path.is_file():
        raise TaoError(f"database not found: {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise TaoError(f"{path}: not a readable SQLite database ({e})") from e
    return conn


def list_tables(conn: sqlite3.Connection) -> list[str]:
    """User tables in creation order (sqlite_* internal tables skipped)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY rowid"
    ).fetchall()
    return [r[0] for r in rows]


def primary_key_of(conn: sqlite3.Connection, table: str) -> list[str]:
    """Primary-key column names of ``table`` in key order."""
    info = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    return [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]


def foreign_keys_of(conn: sqlite3.Connection, table: str) -> dict[str, tuple[str, str]]:
    """Single-column foreign keys of ``table``: ``{column: (ref_table, ref_column)}``.

    A reference without an explicit column resolves to the referenced table's one-column primary key;
    composite foreign keys are left out.
    """
    groups: dict[int, list[tuple]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({quote_ident(table)})").fetchall():
        groups.setdefault(row[0], []).append(row)
    out: dict[str, tuple[str, str]] = {}
    for rows in groups.values():
        if len(rows) != 1:
            continue
        _, _, ref_table, col, ref_col = rows[0][:5]
        if ref_col is None:
            pk = primary_key_of(conn, ref_table)
            if len(pk) != 1:
                continue
            ref_col = pk[0]
        out[col] = (ref_table, ref_col)
    return out


def _table_ddl(conn: sqlite3.Connection, table: str) -> str:
    info = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    pk = primary_key_of(conn, table)
    fks = foreign_keys_of(conn, table)
    parts = []
    for _cid, name, ctype, _notnull, _default, _pk in info:
        part = quote_ident(name)
        if ctype:
            part += f" {ctype}"
        if len(pk) == 1 and name == pk[0]:
            part += " PRIMARY KEY"
        if name in fks:
            ref_table, ref_col = fks[name]
            part += f" REFERENCES {quote_ident(ref_table)}({quote_ident(ref_col)})"
        parts.append(part)
    if len(pk) > 1:
        parts.append("PRIMARY KEY (" + ", ".join(quote_ident(c) for c in pk) + ")")
    return f"CREATE TABLE {quote_ident(table)} ({', '.join(parts)});"


def schema_ddl(db_path: str | Path) -> str:
    """Compact DDL of every user table, one ``CREATE TABLE ...;`` line each, in creation order."""
    conn = connect_readonly(db_path)
    try:
        tables = list_tables(conn)
        if not tables:
            raise TaoError(f"{db_path}: the database has no tables")
        return "\n".join(_table_ddl(conn, t) for t in tables)
    except sqlite3.DatabaseError as e:
        raise TaoError(f"{db_path}: cannot read the schema ({e})") from e
    finally:
        conn.close()


def sql_prompt_messages(schema: str, question: str) -> list[Message]:
    """The plain prompt: one user message with the schema, the instruction and the question."""
    return [{"role": "user", "content": PROMPT_TEMPLATE.format(schema=schema, question=question)}]


# ------------------------------------------------------------------------------- table profiles


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass
class ColumnInfo:
    name: str
    kind: str  # "key" (primary/foreign key) | "num" (2+ distinct) | "date" | "text" | "other"
    values: list[Any]  # sorted distinct non-NULL values (at most 20,000)
    has_null: bool


@dataclass
class TableInfo:
    name: str
    rows: int
    cols: dict[str, ColumnInfo]
    fks: dict[str, tuple[str, str]]  # column → (parent table, parent column)

    def of(self, *kinds: str) -> list[ColumnInfo]:
        return [c for c in self.cols.values() if c.kind in kinds]

    @property
    def junction(self) -> bool:
        """A link table: two or more foreign keys and nothing else worth asking about."""
        return len(self.fks) >= 2 and not self.of("num", "date", "text")

    def categorical(self) -> list[ColumnInfo]:
        """Text columns whose values repeat (good for counting and grouping)."""
        return [c for c in self.of("text") if 2 <= len(c.values) <= 0.8 * self.rows]

    def label(self) -> ColumnInfo | None:
        """The column that names a row: ``name``, else ``*name``, else ``title``, else the first text."""
        texts = self.of("text")
        for ok in (lambda n: n == "name", lambda n: n.endswith("name"), lambda n: n == "title"):
            hits = [c for c in texts if ok(c.name.lower())]
            if hits:
                return hits[0]
        return texts[0] if texts else None


def _column_kind(name: str, keys: set[str], values: list[Any]) -> str:
    if name in keys or name.lower() == "id":
        return "key"
    if values and all(isinstance(v, (int, float)) for v in values):
        return "num" if len(values) >= 2 else "other"
    if values and all(isinstance(v, str) for v in values):
        return "date" if all(_DATE.match(v) for v in values) else "text"
    return "other"


def read_schema(conn: sqlite3.Connection) -> dict[str, TableInfo]:
    """Profile of every user table: rows, foreign keys, and per column its kind and distinct values."""
    tables: dict[str, TableInfo] = {}
    for name in list_tables(conn):
        t = quote_ident(name)
        fks = foreign_keys_of(conn, name)
        keys = set(primary_key_of(conn, name)) | set(fks)
        (rows,) = conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()
        cols: dict[str, ColumnInfo] = {}
        for info in conn.execute(f"PRAGMA table_info({t})").fetchall():
            c = quote_ident(info[1])
            values = [r[0] for r in conn.execute(
                f"SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY 1 LIMIT 20000")]
            (nulls,) = conn.execute(f"SELECT COUNT(*) FROM {t} WHERE {c} IS NULL").fetchone()
            cols[info[1]] = ColumnInfo(info[1], _column_kind(info[1], keys, values), values, nulls > 0)
        tables[name] = TableInfo(name, rows, cols, fks)
    return tables


def build_sqlite_atomically(dest: Path, fill: Callable[[sqlite3.Connection], None], tables: list[str] | tuple[str, ...],
                            expected: dict[str, int] | None, what: str) -> None:
    """Write a database to a temp file beside ``dest`` with ``fill(conn)`` (in one transaction) and move it into
    place only when complete and checked: the row counts of ``tables`` equal ``expected`` (unless it is None) and
    no foreign key dangles; otherwise :class:`TaoError` naming ``what`` and nothing is left behind."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=".sqlite.tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        conn = sqlite3.connect(tmp)
        try:
            with conn:
                fill(conn)
            counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
            if expected is not None and counts != expected:
                raise TaoError(f"{what} has unexpected row counts: {counts}")
            if conn.execute("PRAGMA foreign_key_check").fetchall():
                raise TaoError(f"{what} has dangling foreign keys")
        finally:
            conn.close()
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_db_beside(db: Path, out_dir: Path, name: str) -> None:
    """A copy of ``db`` as ``out_dir/name`` (copied to a temp name, then renamed); nothing when it is that file."""
    dest = Path(out_dir) / name
    if Path(db).resolve() != dest.resolve():
        tmp = dest.with_name(f".{name}.tmp")
        shutil.copyfile(db, tmp)
        tmp.replace(dest)
