"""SQL extraction, the read-only sandbox for untrusted SQL, result signatures, and the SQL exec scorer."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

import opentao.score.sql as scorermod
import opentao.sqlsafe.readonly as sqlmod
from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.sql import SqlExecScorer
from opentao.sqlsafe import SqlResult, extract_sql, result_signature, run_sql_readonly
from tests.helpers.sql import PROMPT, cand, make_db  # noqa: F401  (PROMPT, cand: used below)


@pytest.fixture()
def db(tmp_path) -> Path:
    return make_db(tmp_path / "shop.sqlite")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- extract_sql ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("Here is the query:\n```sql\nSELECT name FROM customer;\n```\nThis query lists names.",
     "SELECT name FROM customer"),
    ("SELECT a FROM t;\n\nOutput: 3", "SELECT a FROM t"),
    ("The answer is 1.", ""),
    ("", ""),
    ("```\nselect count(*) from orders\n```", "select count(*) from orders"),
    ("Sure!\n```SQL\nSELECT 1\n```", "SELECT 1"),
    ("```text\nno sql here\n```\nSELECT id FROM customer", "SELECT id FROM customer"),
    ("Try this:\nSELECT id FROM customer WHERE name = 'a;b';", "SELECT id FROM customer WHERE name = 'a;b'"),
    ("SELECT id\nFROM customer\n\nExplanation: ...", "SELECT id\nFROM customer"),
    ("WITH x AS (SELECT 1 AS a) SELECT a FROM x;", "WITH x AS (SELECT 1 AS a) SELECT a FROM x"),
    ("With this query we select the rows:\nSELECT * FROM orders", "SELECT * FROM orders"),
    ("```sql\nSELECT 1;\nSELECT 2;\n```", "SELECT 1"),
    ("```sql\nSELECT name FROM customer", "SELECT name FROM customer"),  # unterminated fence (truncated sample)
    ("```python\nprint(1)\n```\n```sql\nSELECT 2\n```", "SELECT 2"),
])
def test_extract_sql(text, expected):
    assert extract_sql(text) == expected


# --- the read-only sandbox --------------------------------------------------------------------------
def test_select_works(db):
    res = run_sql_readonly(db, "SELECT name FROM customer WHERE country = 'France' ORDER BY id")
    assert res.ok and res.error == ""
    assert res.columns == ["name"] and res.rows == [("Ann",), ("Cy",)] and not res.truncated


@pytest.mark.parametrize("sql", [
    "SELECT c.name, o.total FROM customer c JOIN orders o ON o.customer_id = c.id WHERE o.total > 5",
    "WITH big AS (SELECT * FROM orders WHERE total > 5) SELECT count(*) FROM big",
    "SELECT id FROM customer UNION SELECT id FROM orders",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT sum(x) FROM c",
])
def test_read_queries_allowed(db, sql):
    assert run_sql_readonly(db, sql).ok


WRITES = [
    "INSERT INTO customer VALUES (9, 'Eve', 'Chile')",
    "UPDATE orders SET total = 0",
    "DELETE FROM orders",
    "DROP TABLE orders",
    "CREATE TABLE evil (a)",
    "PRAGMA writable_schema=1",
    "PRAGMA journal_mode=WAL",
    "SELECT 1; DROP TABLE orders",
    "VACUUM",
    "SELECT load_extension('/tmp/evil')",
    "SELECT writefile('/tmp/opentao-evil', 'x')",
    "CREATE TEMP TABLE t2 AS SELECT 1",
    "BEGIN IMMEDIATE",
    "PRAGMA query_only=OFF",
    "WITH x AS (SELECT 1) INSERT INTO customer SELECT 10, 'x', 'y' FROM x",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_rejected_and_db_byte_identical(db, sql):
    before = sha(db)
    res = run_sql_readonly(db, sql)
    assert not res.ok and res.error and res.rows == []
    assert sha(db) == before
    assert sorted(p.name for p in db.parent.iterdir()) == ["shop.sqlite"]  # no journal, WAL or other file


def test_attach_rejected_and_no_file_created(db, tmp_path):
    before = sha(db)
    target = tmp_path / "x.db"
    res = run_sql_readonly(db, f"ATTACH DATABASE '{target}' AS x")
    assert not res.ok
    assert not target.exists() and sha(db) == before


@pytest.mark.parametrize("sql", [*WRITES, "ATTACH DATABASE '{tmp}/x.db' AS x", "VACUUM INTO '{tmp}/copy.db'"])
def test_sqlite_layer_alone_blocks_writes(db, tmp_path, monkeypatch, sql):
    """Defence in depth: even if the sqlglot statement check let something through, SQLite denies it."""
    monkeypatch.setattr(sqlmod, "_check_query", lambda s: "")
    before = sha(db)
    res = run_sql_readonly(db, sql.format(tmp=tmp_path))
    assert not res.ok, res
    assert sha(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.sqlite"]


def test_bad_sql_never_raises(db, tmp_path):
    for sql in ["SELEC 1", "SELECT * FROM nowhere", "", "   ", "SELECT (", "SELECT randomblob(200000000)"]:
        res = run_sql_readonly(db, sql)
        assert isinstance(res, SqlResult) and not res.ok and res.error
    missing = tmp_path / "missing.sqlite"
    assert not run_sql_readonly(missing, "SELECT 1").ok and not missing.exists()


def test_runaway_query_is_stopped(db):
    sql = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
           "SELECT count(*) FROM c")
    t0 = time.monotonic()
    res = run_sql_readonly(db, sql, timeout_s=0.5)
    elapsed = time.monotonic() - t0
    assert not res.ok and "timeout" in res.error
    assert elapsed < 5.0


def test_max_rows_truncation(db):
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT x FROM c"
    res = run_sql_readonly(db, sql, max_rows=10)
    assert res.ok and res.truncated and len(res.rows) == 10 and res.rows[0] == (1,)
    res = run_sql_readonly(db, sql, max_rows=50)
    assert res.ok and not res.truncated and len(res.rows) == 50


# --- result signatures ------------------------------------------------------------------------------
def test_result_signature_order_insensitive(db):
    a = run_sql_readonly(db, "SELECT id, name FROM customer ORDER BY id")
    b = run_sql_readonly(db, "SELECT id AS k, name AS n FROM customer ORDER BY name DESC")
    c = run_sql_readonly(db, "SELECT id, name FROM customer WHERE id < 4")
    assert result_signature(a) == result_signature(b) != ""
    assert result_signature(a) != result_signature(c)


def test_result_signature_normalizes_values():
    def sig(rows):
        return result_signature(SqlResult(ok=True, rows=rows))

    assert sig([(1, "x"), (2.0, None)]) == sig([(2, None), (1.0, "x")])
    assert sig([(0.1 + 0.2,)]) == sig([(0.3,)])
    assert sig([(1,), (1,)]) != sig([(1,)])  # a multiset, not a set
    assert sig([("1",)]) != sig([(1,)])
    assert sig([(None,)]) != sig([("None",)])
    assert result_signature(SqlResult(ok=False, error="x")) == ""


# --- SqlExecScorer ----------------------------------------------------------------------------------
def test_sql_exec_scorer(db):
    scorer = SqlExecScorer(str(db))
    cands = [
        cand("SELECT name FROM customer WHERE country = 'France'"),  # valid
        cand("SELECT name FROM customer WHERE country = 'Mars'"),  # empty result
        cand("SELECT * FROM customer"),  # whole table
        cand("SELECT c.name FROM customer c JOIN orders o ON o.customer_id = c.id"),  # whole table (orders)
        cand("SELEC name FROM customer"),  # syntax error
        cand("DELETE FROM orders"),  # not a query
        cand("", response="```sql\nSELECT count(*) FROM orders\n```"),  # answer empty: extracted from response
        cand("", response="I don't know."),  # no SQL at all
        cand("SELECT name FROM customer LIMIT 4"),  # 4 rows but LIMIT does work: not whole-table
    ]
    assert scorer.score_group(PROMPT, cands) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]


def test_sql_exec_scorer_truncated_and_cache(db, monkeypatch):
    scorer = SqlExecScorer(str(db), max_rows=2)
    assert scorer.score_group(PROMPT, [cand("SELECT name FROM customer WHERE id > 1")]) == [0.0]
    calls = []
    real = scorermod.run_sql_readonly

    def counting(db_path, sql, **kw):
        calls.append(sql)
        return real(db_path, sql, **kw)

    monkeypatch.setattr(scorermod, "run_sql_readonly", counting)
    same = "SELECT name FROM customer WHERE id = 1"
    assert scorer.score_group(PROMPT, [cand(same, cid=str(i)) for i in range(4)]) == [1.0] * 4
    assert calls.count(same) == 1


def test_sql_exec_scorer_validates_db(tmp_path):
    with pytest.raises(TaoError, match="not found"):
        SqlExecScorer(str(tmp_path / "nope.sqlite"))
    junk = tmp_path / "junk.sqlite"
    junk.write_text("hello, not a database")
    with pytest.raises(TaoError, match="not a SQLite"):
        SqlExecScorer(str(junk))


def test_star_score_marks_select_star(tmp_path):
    import sqlite3

    from opentao.records import Candidate, Prompt
    from opentao.score.sql import SqlExecScorer
    from opentao.sqlsafe import selects_star

    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE t (id INTEGER, name TEXT); INSERT INTO t VALUES (1,'a'),(2,'b'),(3,'c');")
    con.commit()
    con.close()
    assert selects_star("SELECT * FROM t WHERE id = 1") and selects_star("SELECT t.* FROM t WHERE id = 1")
    assert not selects_star("SELECT COUNT(*) FROM t") and not selects_star("SELECT name FROM t WHERE id = 1")
    sqls = ["SELECT * FROM t WHERE id = 1", "SELECT name FROM t WHERE id = 1", "SELECT nope FROM t"]
    cands = [Candidate("p", f"p#{i}", "plain", [], s, s, s) for i, s in enumerate(sqls)]
    prompt = Prompt("p", [{"role": "user", "content": "q"}])
    assert SqlExecScorer(str(db)).score_group(prompt, cands) == [1.0, 1.0, 0.0]
    assert SqlExecScorer(str(db), star_score=0.5).score_group(prompt, cands) == [0.5, 1.0, 0.0]
