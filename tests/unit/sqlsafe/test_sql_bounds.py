"""Hard bounds on untrusted SQL: single slow function calls, memory and result-size bombs, WAL databases."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from opentao.sqlsafe import run_sql_readonly
from opentao.sqlsafe import sandbox as sql_sandbox

LIMIT = 1.0
ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "


@pytest.fixture()
def db(tmp_path) -> Path:
    path = tmp_path / "t.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                      + ROWS.format(n=2000) + "INSERT INTO t SELECT x, 'v' || x FROM c;")
    con.commit()
    con.close()
    return path


BOMBS = {
    "printf": "SELECT printf('%.*c', 1e9, 'x')",
    # quadratic in C: ~2e6 x 2e6 byte comparisons, tens of CPU seconds even with a fast memcmp (at 800k x 400k
    # chars a fast machine finished inside the 2 s CPU allowance and the CPU-limit test below passed by luck)
    "instr": ("SELECT instr(replace(hex(zeroblob(2000000)), '0', 'a') || 'b', "
              "replace(hex(zeroblob(1000000)), '0', 'a') || 'b')"),
    "recursive": ROWS.format(n=10**12) + "SELECT count(*) FROM c",
    "cross_join": "SELECT count(*) FROM t a, t b, t c",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_slow_queries_return_within_the_limit(db, name):
    t0 = time.monotonic()
    res = run_sql_readonly(db, BOMBS[name], timeout_s=LIMIT)
    elapsed = time.monotonic() - t0
    assert not res.ok and "timeout" in res.error, res
    assert elapsed < LIMIT + 1.0, elapsed
    ok = run_sql_readonly(db, "SELECT count(*) FROM t", timeout_s=LIMIT)  # a replacement worker serves the next
    assert ok.ok and ok.rows == [(2000,)]


def test_result_bytes_are_capped_not_only_rows(db):
    t0 = time.monotonic()
    res = run_sql_readonly(db, ROWS.format(n=1001) + "SELECT zeroblob(9999999) FROM c", timeout_s=LIMIT)
    assert not res.ok and "result too large" in res.error
    assert time.monotonic() - t0 < LIMIT + 1.0
    small = run_sql_readonly(db, ROWS.format(n=3) + "SELECT zeroblob(10) FROM c", max_result_bytes=25)
    assert not small.ok and "result too large" in small.error
    assert run_sql_readonly(db, ROWS.format(n=3) + "SELECT zeroblob(10) FROM c", max_result_bytes=30).ok


def test_memory_is_capped_by_the_address_space_limit(db):
    """A sort of 60 × 9 MB blobs needs ~540 MB in the worker (temp storage is in memory): with a 256 MiB
    address-space limit it fails with an out-of-memory error instead of growing."""
    sql = ROWS.format(n=60) + "SELECT length(b) FROM (SELECT zeroblob(9000000) || x AS b FROM c ORDER BY b)"
    t0 = time.monotonic()
    res = run_sql_readonly(db, sql, timeout_s=5.0, max_memory_bytes=256 << 20)
    assert not res.ok and "memory" in res.error.lower(), res
    assert time.monotonic() - t0 < 6.0
    assert run_sql_readonly(db, sql, timeout_s=20.0, max_memory_bytes=2 << 30).ok  # the limit, not the query


def test_cpu_limit_ends_a_worker_spinning_in_c(db, monkeypatch):
    """Without the parent's wall-clock kill, RLIMIT_CPU still ends a query stuck inside one function call."""
    monkeypatch.setattr(sql_sandbox, "KILL_GRACE_S", 30.0)
    t0 = time.monotonic()
    res = run_sql_readonly(db, BOMBS["instr"], timeout_s=0.5)
    assert not res.ok and "CPU" in res.error, res
    assert time.monotonic() - t0 < 5.0


def test_wal_database_read_creates_no_side_files(tmp_path):
    path = tmp_path / "wal.sqlite"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1), (2)")
    con.commit()
    con.close()  # the last connection checkpoints and removes -wal/-shm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    res = run_sql_readonly(path, "SELECT sum(x) FROM t")
    assert res.ok and res.rows == [(3,)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_wal_database_with_a_live_writer_sees_its_commits(tmp_path):
    path = tmp_path / "wal.sqlite"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (5)")
    writer.commit()  # still open: the -wal and -shm files exist and hold the commit
    try:
        names = sorted(p.name for p in tmp_path.iterdir())
        res = run_sql_readonly(path, "SELECT x FROM t")
        assert res.ok and res.rows == [(5,)]
        assert sorted(p.name for p in tmp_path.iterdir()) == names
    finally:
        writer.close()


def test_normal_queries_reuse_one_worker(db):
    run_sql_readonly(db, "SELECT 1")
    pids = set()
    for _ in range(5):
        assert run_sql_readonly(db, "SELECT count(*) FROM t").ok
        pids |= {w.proc.pid for w in sql_sandbox._IDLE}
    assert len(pids) == 1
