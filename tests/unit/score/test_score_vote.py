"""Majority vote (self-consistency) over final answers and over SQL result sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.vote import MajorityVoteScorer
from opentao.text import normalize_answer
from tests.helpers.sql import make_db

PROMPT = Prompt("p", [{"role": "user", "content": "q"}])


def cands(answers: list[str]) -> list[Candidate]:
    return [Candidate("p", f"c{i}", "plain", [], a, a, a) for i, a in enumerate(answers)]


@pytest.fixture()
def db(tmp_path) -> Path:
    return make_db(tmp_path / "shop.sqlite")


@pytest.mark.parametrize("raw,expected", [
    ("  Paris. ", "paris"),
    ("The   ANSWER\nis  x!", "the answer is x"),
    ("3.0", "3"),
    ("3", "3"),
    ("-2.50", "-2.5"),
    ("1,000", "1000"),
    ("1e3", "1000"),
    ("", ""),
    ("3.0 apples", "3.0 apples"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_answer_mode_plurality():
    scorer = MajorityVoteScorer()
    got = scorer.score_group(PROMPT, cands(["42", "42.0", " 42. ", "41", "", "forty-two"]))
    assert got == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_answer_mode_tie_gives_all_tied_keys_full_score():
    scorer = MajorityVoteScorer()
    assert scorer.score_group(PROMPT, cands(["a", "b", "a", "b", "c"])) == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_abstains_without_consensus():
    scorer = MajorityVoteScorer()
    assert scorer.score_group(PROMPT, cands(["a", "b", "c", ""])) == [None] * 4
    assert scorer.score_group(PROMPT, cands(["", ""])) == [None, None]
    assert scorer.score_group(PROMPT, []) == []
    strict = MajorityVoteScorer(min_votes=3)
    assert strict.score_group(PROMPT, cands(["a", "a", "b"])) == [None] * 3
    assert strict.score_group(PROMPT, cands(["a", "a", "a", "b"])) == [1.0, 1.0, 1.0, 0.0]
    loose = MajorityVoteScorer(min_votes=1)
    assert loose.score_group(PROMPT, cands(["a", "b"])) == [1.0, 1.0]


def test_graded():
    scorer = MajorityVoteScorer(graded=True)
    got = scorer.score_group(PROMPT, cands(["a", "a", "a", "b", ""]))
    assert got == [0.75, 0.75, 0.75, 0.25, 0.0]


def test_sql_result_mode(db):
    scorer = MajorityVoteScorer(mode="sql_result", db=str(db))
    sqls = [
        "SELECT name FROM customer WHERE country = 'France'",
        "SELECT c.name FROM customer AS c WHERE c.country = 'France' ORDER BY c.name DESC",  # same result set
        "SELECT name FROM customer WHERE id IN (1, 3)",  # same result set
        "SELECT name FROM customer WHERE country = 'Spain'",  # a different result
        "SELECT * FROM customer",  # whole table: no key
        "SELECT name FROM customer WHERE country = 'Mars'",  # empty: no key
        "DROP TABLE customer",  # rejected: no key
        "SELEC oops",  # syntax error: no key
    ]
    assert scorer.score_group(PROMPT, cands(sqls)) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_sql_result_mode_invalid_results_never_form_consensus(db):
    scorer = MajorityVoteScorer(mode="sql_result", db=str(db))
    sqls = ["SELECT * FROM customer", "SELECT * FROM customer", "SELECT 1 FROM customer WHERE 0",
            "SELECT 1 FROM customer WHERE 0", "SELECT name FROM customer WHERE id = 2"]
    assert scorer.score_group(PROMPT, cands(sqls)) == [None] * 5


def test_sql_result_mode_tie(db):
    scorer = MajorityVoteScorer(mode="sql_result", db=str(db))
    sqls = ["SELECT count(*) FROM orders", "SELECT 5", "SELECT name FROM customer WHERE id = 2",
            "SELECT 'Bob'", "SELECT 7"]
    assert scorer.score_group(PROMPT, cands(sqls)) == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_constructor_errors(tmp_path):
    with pytest.raises(TaoError, match="mode"):
        MajorityVoteScorer(mode="nope")
    with pytest.raises(TaoError, match="needs 'db'"):
        MajorityVoteScorer(mode="sql_result")
    with pytest.raises(TaoError, match="not found"):
        MajorityVoteScorer(mode="sql_result", db=str(tmp_path / "missing.sqlite"))
    with pytest.raises(TaoError, match="min_votes"):
        MajorityVoteScorer(min_votes=0)


def test_no_consensus_zero_scores_the_group_instead_of_abstaining():
    zero = MajorityVoteScorer(no_consensus="zero")
    assert zero.score_group(PROMPT, cands(["a", "b", "c", ""])) == [0.0] * 4
    assert zero.score_group(PROMPT, cands(["a", "a", "b"])) == [1.0, 1.0, 0.0]  # a consensus scores as before
    strict = MajorityVoteScorer(no_consensus="zero", require_plurality=True)
    assert strict.score_group(PROMPT, cands(["a", "a", "b", "b"])) == [0.0] * 4
    with pytest.raises(TaoError, match="no_consensus"):
        MajorityVoteScorer(no_consensus="skip")


def test_no_consensus_zero_keeps_a_lone_valid_query_below_the_threshold(db):
    """With sql_exec beside the vote, an abstaining vote lets a query that merely runs reach 1.0; a zero does not."""
    from opentao.score.combine import combine
    from opentao.score.sql import SqlExecScorer

    group = cands(["SELECT name FROM customer WHERE country = 'France'", "SELECT 1 FROM nope"])
    exec_scores = SqlExecScorer(str(db)).score_group(PROMPT, group)
    assert exec_scores[0] == 1.0 and exec_scores[1] == 0.0
    for mode, best in (("abstain", 1.0), ("zero", 0.5)):
        vote = MajorityVoteScorer(mode="sql_result", db=str(db), no_consensus=mode).score_group(PROMPT, group)
        combined = combine({"sql_exec": exec_scores, "majority_vote": vote}, {})
        assert combined[0] == pytest.approx(best)
