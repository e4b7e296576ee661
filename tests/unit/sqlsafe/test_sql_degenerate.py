"""Degenerate-but-valid SQL: all-NULL/zero single rows and literals that occur nowhere in their column score 0 and
get no vote."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentao.score.sql import SqlExecScorer
from opentao.sqlsafe import run_sql_readonly
from opentao.sqlsafe.degenerate import DegenerateChecker, is_null_zero_row
from opentao.score.vote import MajorityVoteScorer
from tests.helpers.sql import PROMPT, cand, make_db


@pytest.fixture()
def db(tmp_path) -> Path:
    return make_db(tmp_path / "shop.sqlite")


@pytest.mark.parametrize("rows,expected", [
    ([(0,)], True), ([(None,)], True), ([(0.0, None, "")], True), ([(0, 1)], False), ([(3,)], False),
    ([(0,), (0,)], False), ([], False), ([("France",)], False),
])
def test_null_zero_row(rows, expected):
    assert is_null_zero_row(rows) is expected


@pytest.mark.parametrize("sql,absent", [
    ("SELECT COUNT(*) + 1 FROM customer WHERE country = 'Mars'", ["customer.country = 'Mars'"]),
    ("SELECT COUNT(*) + 1 FROM customer WHERE 'Mars' = country", ["customer.country = 'Mars'"]),
    ("SELECT COUNT(*) + 1 FROM customer WHERE country = 'France'", []),
    ("SELECT COUNT(*) + 1 FROM customer WHERE country = 'france'", ["customer.country = 'france'"]),  # BINARY
    ("SELECT o.total + 1 FROM orders o JOIN customer c ON o.customer_id = c.id AND c.name = 'Zed'",
     ["customer.name = 'Zed'"]),
    ("SELECT COUNT(*) + 1 FROM customer c WHERE c.country IN ('Mars', 'Peru')", []),
    ("SELECT COUNT(*) + 1 FROM customer c WHERE c.country IN ('Mars', 'Pluto')", ["customer.country IN 'Mars', 'Pluto'"]),
    ("SELECT COUNT(*) + 1 FROM customer WHERE country LIKE 'Fr%'", []),
    ("SELECT COUNT(*) + 1 FROM customer WHERE country LIKE 'Ma%'", ["customer.country LIKE 'Ma%'"]),
    ("SELECT name FROM customer WHERE country = 'Mars' OR country = 'Spain'", []),  # under OR: not required
    ("SELECT name FROM customer WHERE NOT country = 'Mars'", []),
    ("WITH x AS (SELECT name AS n FROM customer) SELECT COUNT(*) + 1 FROM x WHERE n = 'Q'", []),  # CTE column
    ("SELECT COUNT(*) + 1 FROM customer WHERE nosuch = 'Q'", []),  # not a column: SQLite would have failed
    ("SELECT COUNT(*) + 1 FROM customer WHERE country = 'It''s'", ["customer.country = \"It's\""]),
])
def test_absent_literals(db, sql, absent):
    checker = DegenerateChecker(db, lambda q: run_sql_readonly(db, q))
    assert checker.absent(sql) == absent


def test_literal_is_never_pasted_into_sql(db):
    seen: list[str] = []

    def run(q: str):
        seen.append(q)
        return run_sql_readonly(db, q)

    DegenerateChecker(db, run).absent("SELECT name FROM customer WHERE name = 'x'' OR ''1''=''1'")
    probe = [q for q in seen if "WHERE" in q]
    assert probe and all("'x'' OR ''1''=''1'" in q for q in probe)  # still one quoted literal


def test_checker_caches_per_literal(db):
    calls = []
    checker = DegenerateChecker(db, lambda q: calls.append(q) or run_sql_readonly(db, q))
    for _ in range(3):
        checker.absent("SELECT id FROM customer WHERE country = 'Mars'")
    assert len(calls) == 2  # the table's columns once, the literal once


@pytest.mark.parametrize("sql,reason", [
    ("SELECT COUNT(*) FROM customer WHERE country = 'Mars'", "NULL/zero"),
    ("SELECT MAX(o.total) FROM orders o JOIN customer c ON o.customer_id = c.id WHERE c.name = 'Zed'", "NULL/zero"),
    ("SELECT SUM(total) FROM orders WHERE customer_id = 99", "NULL/zero"),
    ("SELECT COUNT(*) + 1 FROM customer WHERE country = 'Mars'", "literal not in its column"),
])
def test_sql_exec_scores_degenerate_zero(db, sql, reason):
    scorer = SqlExecScorer(str(db))
    assert scorer.score_group(PROMPT, [cand(sql)]) == [0.0]
    assert reason in scorer.check(sql)[1]
    assert sum(scorer.counters().values()) >= 1
    assert SqlExecScorer(str(db), degenerate=False).score_group(PROMPT, [cand(sql)]) == [1.0]  # the old reward


def test_sql_exec_still_pays_real_answers(db):
    scorer = SqlExecScorer(str(db))
    good = ["SELECT COUNT(*) FROM customer WHERE country = 'France'", "SELECT name FROM customer WHERE id = 2"]
    assert scorer.score_group(PROMPT, [cand(q) for q in good]) == [1.0, 1.0]
    assert scorer.counters() == {"degenerate_null_zero_row": 0, "degenerate_absent_literal": 0}


def test_vote_ignores_degenerate_results(db):
    empty = ["SELECT COUNT(*) FROM customer WHERE country = 'Mars'", "SELECT COUNT(*) FROM customer WHERE name = 'X'",
             "SELECT COUNT(id) FROM customer WHERE country = 'Atlantis'"]
    real = ["SELECT COUNT(*) FROM customer WHERE country = 'France'", "SELECT COUNT(*) FROM customer WHERE id < 3"]
    cands = [cand(q, cid=str(i)) for i, q in enumerate(empty + real)]
    old = MajorityVoteScorer(mode="sql_result", db=str(db), degenerate=False).score_group(PROMPT, cands)
    assert old == [1.0, 1.0, 1.0, 0.0, 0.0]  # before: the three non-answers out-vote the real ones
    new = MajorityVoteScorer(mode="sql_result", db=str(db)).score_group(PROMPT, cands)
    assert new == [0.0, 0.0, 0.0, 1.0, 1.0]  # France and id < 3 both return 2
