"""Tests for the generic text-to-SQL helpers in ``opentao.tasks.sql`` on a small hand-made database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.tasks.sql import (
    connect_readonly,
    is_whole_table,
    plural,
    read_schema,
    schema_ddl,
    sql_literal,
    sql_prompt_messages,
    tables_read,
    words,
)


def make_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE author (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, country TEXT);
        CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER REFERENCES author(id),
                           pages INTEGER, price REAL, published TEXT);
        CREATE TABLE book_tag (book_id INTEGER REFERENCES book, tag TEXT, PRIMARY KEY (book_id, tag));
        INSERT INTO author (name, country) VALUES ('Ann', 'UK'), ('Bob', 'UK'), ('Cy', 'France');
        INSERT INTO book VALUES (1, 'A', 1, 100, 9.5, '2001-01-02'), (2, 'B', 1, 200, 12.0, '2003-05-06'),
                                (3, 'C', 2, 300, 7.25, '1999-12-31'), (4, 'D', 3, 150, 20.0, '2010-07-08');
        INSERT INTO book_tag VALUES (1, 'x'), (1, 'y'), (2, 'x'), (4, 'z');
        """
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "lib.sqlite")


def test_schema_ddl_lists_tables_keys_and_references(db: Path) -> None:
    lines = schema_ddl(db).splitlines()
    assert lines == [
        "CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT, country TEXT);",
        "CREATE TABLE book (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER REFERENCES author(id), "
        "pages INTEGER, price REAL, published TEXT);",
        "CREATE TABLE book_tag (book_id INTEGER REFERENCES book(id), tag TEXT, PRIMARY KEY (book_id, tag));",
    ]  # sqlite_sequence (from AUTOINCREMENT) is skipped; an implicit FK target resolves to the PK


def test_schema_ddl_path_with_odd_characters(tmp_path: Path) -> None:
    path = make_db(tmp_path / "my lib #1?.sqlite")
    assert schema_ddl(str(path)).startswith("CREATE TABLE author (")


def test_schema_ddl_errors(tmp_path: Path) -> None:
    with pytest.raises(TaoError, match="not found"):
        schema_ddl(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not a database, just some text that is long enough " * 10)
    with pytest.raises(TaoError, match="not a readable SQLite database"):
        schema_ddl(junk)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(TaoError, match="no tables"):
        schema_ddl(empty)
    with pytest.raises(TaoError, match="not found"):
        schema_ddl(tmp_path)  # a directory


def test_connection_is_read_only(db: Path) -> None:
    conn = connect_readonly(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("CREATE TABLE x (a)")
    conn.close()


def test_prompt_format() -> None:
    messages = sql_prompt_messages("CREATE TABLE t (a INTEGER);", "How many rows?")
    assert messages == [{
        "role": "user",
        "content": "Database schema:\nCREATE TABLE t (a INTEGER);\n\nWrite one SQLite query that answers the "
                   "question. Reply with only the SQL.\nQuestion: How many rows?",
    }]


def test_tables_read() -> None:
    assert tables_read("SELECT b.title FROM book b JOIN author a ON b.author_id = a.id") == ["book", "author"]
    assert tables_read("WITH x AS (SELECT * FROM book) SELECT * FROM x") == ["book"]
    assert tables_read("SELEC nonsense (((") == []


@pytest.mark.parametrize(
    ("sql", "whole"),
    [
        ("SELECT * FROM book", True),
        ("SELECT title FROM book", True),
        ("SELECT b.title FROM book AS b JOIN author AS a ON b.author_id = a.id", True),
        ("SELECT title FROM book WHERE pages > 0", False),  # every row, but a filter did the work
        ("SELECT title FROM book LIMIT 100", False),
        ("SELECT COUNT(*) FROM book", False),
        ("SELECT author_id, COUNT(*) FROM book GROUP BY author_id", False),
        ("SELECT DISTINCT country FROM author", False),  # 2 rows, tables have 3 and 4
        ("SELECT name FROM author", True),
        ("SELECT title FROM book WHERE id IN (SELECT book_id FROM book_tag)", False),
        ("not sql at all ((", False),
    ],
)
def test_is_whole_table(db: Path, sql: str, whole: bool) -> None:
    conn = sqlite3.connect(db)
    rows = conn.execute(sql).fetchall() if "not sql" not in sql else []
    assert is_whole_table(conn, sql, rows) is whole
    assert is_whole_table(conn, sql, len(rows)) is whole
    conn.close()


def test_read_schema_profiles_columns(db: Path) -> None:
    conn = connect_readonly(db)
    tables = read_schema(conn)
    conn.close()
    assert list(tables) == ["author", "book", "book_tag"]
    book = tables["book"]
    assert book.rows == 4 and book.fks == {"author_id": ("author", "id")}
    kinds = {c.name: c.kind for c in book.cols.values()}
    assert kinds == {"id": "key", "title": "text", "author_id": "key", "pages": "num", "price": "num",
                     "published": "date"}
    assert book.label() is not None and book.label().name == "title"
    assert tables["book_tag"].fks == {"book_id": ("book", "id")}
    assert [c.name for c in tables["author"].categorical()] == ["country"]
    assert tables["author"].cols["country"].values == ["France", "UK"]


def test_wording_helpers() -> None:
    assert words("media_type") == "media type" and words("UnitPrice") == "unit price"
    nouns = ("track", "city", "address", "day", "media type", "length in milliseconds")
    assert [plural(p) for p in nouns] == [
        "tracks", "cities", "addresses", "days", "media types", "lengths in milliseconds"]
    assert sql_literal("Road Trippin'") == "'Road Trippin'''" and sql_literal(0.99) == "0.99"
    assert sql_literal(2.0) == "2" and sql_literal(42) == "42"
