"""Rule scorers (regex, user callables, JSON), score combination, and the config → scorer registry."""

from __future__ import annotations

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.combine import combine, normalize_scores
from opentao.score.registry import build_scorers, score_group_all
from opentao.score.rules import CallableScorer, JsonScorer, RegexScorer
from opentao.score.sql import SqlExecScorer
from opentao.score.vote import MajorityVoteScorer
from tests.helpers.sql import make_db

PROMPT = Prompt("p", [{"role": "user", "content": "q"}])


def cands(responses: list[str], answers: list[str] | None = None) -> list[Candidate]:
    answers = answers if answers is not None else responses
    return [Candidate("p", f"c{i}", "plain", [], r, r, a) for i, (r, a) in enumerate(zip(responses, answers))]


# --- helpers referenced as "tests.unit.score.test_score_rules:..." -------------------------------------------
def length_score(prompt, candidate):
    return len(candidate.response) / 10


def flaky(prompt, candidate):
    if "boom" in candidate.response:
        raise ValueError("boom")
    if "str" in candidate.response:
        return "high"
    if "none" in candidate.response:
        return None
    return "good" in candidate.response  # a bool


def ranks(prompt, candidates):
    return [float(i) for i in range(len(candidates))]


ranks.group = True


def short_list(prompt, candidates):
    return [1.0]


short_list.group = True


class GroupScorerClass:
    def score_group(self, prompt, candidates):
        return [0.5] * len(candidates)


class PluginScorer:
    """A plugin Scorer class taking a keyword argument."""

    def __init__(self, value: float = 1.0, name: str = "plugin"):
        self.value = value
        self.name = name

    def score_group(self, prompt, candidates):
        return [self.value] * len(candidates)


class NotAScorer:
    def __init__(self):
        self.x = 1


class BadLength:
    name = "bad_length"

    def score_group(self, prompt, candidates):
        return [1.0]


class NanScorer:
    name = "nan"

    def score_group(self, prompt, candidates):
        return [float("nan")] * len(candidates)


ready_scorer = PluginScorer(0.25, name="ready")


# --- RegexScorer ----------------------------------------------------------------------------------
def test_regex_scorer():
    s = RegexScorer(r"\bselect\b", flags="i")
    assert s.score_group(PROMPT, cands(["SELECT 1", "nothing", "xselect"])) == [1.0, 0.0, 0.0]
    s2 = RegexScorer(r"^\d+$", on_match=2.0, on_miss=-1.0, field="answer", name="num")
    assert s2.name == "num"
    assert s2.score_group(PROMPT, cands(["a", "b"], answers=["12", "12a"])) == [2.0, -1.0]


def test_regex_scorer_errors():
    with pytest.raises(TaoError, match="invalid pattern"):
        RegexScorer("(unclosed")
    with pytest.raises(TaoError, match="flag"):
        RegexScorer("a", flags="q")
    with pytest.raises(TaoError, match="field"):
        RegexScorer("a", field="nope")


# --- CallableScorer -------------------------------------------------------------------------------
def test_callable_per_candidate():
    s = CallableScorer("tests.unit.score.test_score_rules:length_score")
    assert s.name == "length_score"
    assert s.score_group(PROMPT, cands(["abc", "abcdefghij"])) == [pytest.approx(0.3), 1.0]


def test_callable_errors_abstain_and_are_counted():
    s = CallableScorer("tests.unit.score.test_score_rules:flaky", name="flaky_rule")
    got = s.score_group(PROMPT, cands(["good", "boom", "bad", "str", "none"]))
    assert got == [1.0, None, 0.0, None, None]
    assert s.errors == 2 and "high" in s.last_error
    s.score_group(PROMPT, cands(["boom"]))
    assert s.errors == 3 and "boom" in s.last_error


def test_callable_group_modes():
    assert CallableScorer("tests.unit.score.test_score_rules:ranks").score_group(PROMPT, cands(["a", "b", "c"])) == [0.0, 1.0, 2.0]
    s = CallableScorer("tests.unit.score.test_score_rules:short_list")
    assert s.score_group(PROMPT, cands(["a", "b"])) == [None, None] and s.errors == 1
    g = CallableScorer("tests.unit.score.test_score_rules:GroupScorerClass")
    assert g.score_group(PROMPT, cands(["a", "b"])) == [0.5, 0.5]


def test_callable_load_errors():
    with pytest.raises(TaoError, match="package.module:attr"):
        CallableScorer("no_colon_here")
    with pytest.raises(TaoError, match="cannot import"):
        CallableScorer("tests.no_such_module:fn")
    with pytest.raises(TaoError, match="no attribute"):
        CallableScorer("tests.unit.score.test_score_rules:missing_fn")


def test_json_scorer():
    s = JsonScorer()
    assert s.score_group(PROMPT, cands(['{"a": 1}', "[1, 2]", "{a: 1}", '```json\n{"b": 2}\n```'])) == [1.0, 1.0, 0.0, 1.0]


# --- combine --------------------------------------------------------------------------------------
def test_combine_weights_and_abstentions():
    per = {"a": [1.0, 0.0, None, None], "b": [0.0, 0.0, 0.5, None]}
    got = combine(per, {"a": 3.0, "b": 1.0})
    assert got[0] == pytest.approx(0.75)
    assert got[1] == 0.0
    assert got[2] == pytest.approx(0.5)  # only b rated it: its weight is renormalized to 1
    assert got[3] is None  # every scorer abstained
    assert combine({}, {}) == []


def test_combine_zscore_and_rank():
    assert normalize_scores([1.0, 2.0, 3.0, None], "zscore") == pytest.approx([-1.224744871, 0.0, 1.224744871, None])
    assert normalize_scores([2.0, 2.0, None], "zscore") == [0.0, 0.0, None]
    assert normalize_scores([10.0, 30.0, 20.0, 20.0], "rank") == pytest.approx([0.0, 1.0, 0.5, 0.5])
    assert normalize_scores([None, 7.0], "rank") == [None, 0.5]
    got = combine({"a": [0.0, 1.0, 1.0], "b": [5.0, 5.0, 5.0]}, {"a": 1.0, "b": 1.0}, normalize="zscore")
    za = normalize_scores([0.0, 1.0, 1.0], "zscore")
    assert got == pytest.approx([za[0] / 2, za[1] / 2, za[2] / 2])
    got = combine({"a": [0.0, 3.0, 1.0], "b": [1.0, 1.0, None]}, {"a": 1.0, "b": 1.0}, normalize="rank")
    assert got == pytest.approx([0.25, 0.75, 0.5])


def test_combine_errors():
    with pytest.raises(TaoError, match="normalization"):
        combine({"a": [1.0]}, {"a": 1.0}, normalize="minmax")
    with pytest.raises(TaoError, match="different numbers"):
        combine({"a": [1.0], "b": [1.0, 2.0]}, {})


# --- registry -------------------------------------------------------------------------------------
def test_build_scorers_builtins_and_plugin(tmp_path):
    db = str(make_db(tmp_path / "shop.sqlite"))
    built = build_scorers([
        {"type": "sql_exec", "db": db, "weight": 2.0},
        {"type": "majority_vote", "mode": "sql_result", "db": db},
        {"type": "regex", "pattern": "SELECT", "name": "has_select", "weight": 0.5},
        {"type": "callable", "path": "tests.unit.score.test_score_rules:length_score"},
        {"type": "tests.unit.score.test_score_rules:PluginScorer", "value": 0.5, "name": "plug"},
        {"type": "tests.unit.score.test_score_rules:ready_scorer"},
    ])
    names = [s.name for s, _ in built]
    assert names == ["sql_exec", "majority_vote", "has_select", "length_score", "plug", "ready"]
    assert [w for _, w in built] == [2.0, 1.0, 0.5, 1.0, 1.0, 1.0]
    assert isinstance(built[0][0], SqlExecScorer) and isinstance(built[1][0], MajorityVoteScorer)
    assert built[4][0].value == 0.5

    sqls = ["SELECT name FROM customer WHERE id = 1", "SELECT name FROM customer WHERE id = 1", "bad"]
    per, combined = score_group_all(built[:3], PROMPT, cands(sqls))
    assert per == {"sql_exec": [1.0, 1.0, 0.0], "majority_vote": [1.0, 1.0, 0.0], "has_select": [1.0, 1.0, 0.0]}
    assert combined == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("specs,needle", [
    ([{"type": "nope"}], "known types: sql_exec, majority_vote, regex, callable"),
    ([{"pattern": "x"}], "no 'type'"),
    ([{"type": "regex", "pattern": "x", "colour": "red"}], "'regex'.*'colour'"),
    ([{"type": "regex"}], "'regex'.*pattern"),
    ([{"type": "regex", "pattern": "x"}, {"type": "regex", "pattern": "y"}], "both named 'regex'"),
    ([{"type": "regex", "pattern": "x", "name": "combined"}], "reserved"),
    ([{"type": "regex", "pattern": "x", "weight": "heavy"}], "weight"),
    ([{"type": "tests.unit.score.test_score_rules:NotAScorer"}], "not a Scorer"),
    ([{"type": "tests.unit.score.test_score_rules:PluginScorer", "bogus": 1}], "PluginScorer.*'bogus'"),
    ([{"type": "tests.unit.score.test_score_rules:nothing_here"}], "no attribute"),
    ([{"type": "majority_vote", "mode": "sql_result"}], "needs 'db'"),
])
def test_build_scorers_errors(specs, needle):
    with pytest.raises(TaoError, match=needle):
        build_scorers(specs)


def test_score_group_all_validates_outputs():
    (bad, w), = build_scorers([{"type": "tests.unit.score.test_score_rules:BadLength"}])
    with pytest.raises(TaoError, match="'bad_length' returned 1 scores for 2"):
        score_group_all([(bad, w)], PROMPT, cands(["a", "b"]))
    (nan, w), = build_scorers([{"type": "tests.unit.score.test_score_rules:NanScorer"}])
    with pytest.raises(TaoError, match="'nan'"):
        score_group_all([(nan, w)], PROMPT, cands(["a"]))
    with pytest.raises(TaoError, match="normalization"):
        score_group_all([], PROMPT, cands(["a"]), normalize="bogus")


def test_score_group_all_with_normalize_and_abstain():
    built = build_scorers([
        {"type": "majority_vote", "weight": 1.0},
        {"type": "callable", "path": "tests.unit.score.test_score_rules:ranks", "weight": 1.0},
    ])
    per, combined = score_group_all(built, PROMPT, cands(["a", "b", "c"]), normalize="rank")
    assert per["majority_vote"] == [None, None, None]  # no consensus: abstains
    assert per["ranks"] == [0.0, 1.0, 2.0]
    assert combined == pytest.approx([0.0, 0.5, 1.0])  # only the ranks scorer counts


def test_fit_scorers_fits_only_scorers_that_fit_and_wraps_their_errors() -> None:
    from opentao.score.registry import fit_scorers

    class Fits:
        name = "fits"

        def __init__(self, fail: bool = False) -> None:
            self.seen, self.fail = None, fail

        def fit(self, groups):
            if self.fail:
                raise ValueError("boom")
            self.seen = [p.prompt_id for p, _ in groups]

        def score_group(self, prompt, candidates):
            return [0.0] * len(candidates)

    fits, plain = Fits(), RegexScorer(pattern="a")
    fit_scorers([(fits, 1.0), (plain, 1.0)], [(PROMPT, cands(["a"]))])
    assert fits.seen == ["p"]
    with pytest.raises(TaoError, match="'fits' failed to fit: ValueError: boom"):
        fit_scorers([(Fits(fail=True), 1.0)], [(PROMPT, cands(["a"]))])
