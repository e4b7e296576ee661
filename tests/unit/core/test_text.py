"""opentao.text: the one normalize_answer / content_words / tally+plurality agree with the rules they replaced.

The replaced implementations are frozen below verbatim (generate/strategies.py, score/vote.py, score/guards.py,
tasks/instruct.py, and the Counter-based votes), and compared on a corpus of every string literal in the
package and the tests (answers, prompts, fixtures, docstrings) plus edge cases.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from opentao.text import IDENTIFIER_STOPWORDS, PROSE_STOPWORDS, content_words, normalize_answer, plurality, tally

ROOT = Path(__file__).resolve().parents[3]

# --- frozen copies of the replaced rules --------------------------------------------------------------------


def old_strategies_normalize(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.rstrip(" .!;:")


_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _old_canonical_number(text: str) -> str | None:
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER_RE.fullmatch(text):
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def old_vote_normalize(text: str) -> str:
    text = re.sub(r"\s+", " ", (text or "").strip().lower())
    text = text.rstrip(" .,;:!?")
    num = _old_canonical_number(text)
    return num if num is not None else text


_OLD_STOP = set("""a an and are as at be but by can could did do does for from had has have how i if in into is it its
me my no not of on or our shall should so than that the their them then there these they this those to us was we
were what when where which who whom why will with would you your please answer question give show list find tell
select sql query""".split())
_OLD_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def old_guards_content_words(text: str) -> set[str]:
    return {w for w in _OLD_WORD.findall(text.lower()) if len(w) >= 3 and w not in _OLD_STOP}


_OLD_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own said same says she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself also which been year years one two three new
""".split())


def _old_words_of(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9][A-Za-z0-9'’-]*", text or "")


def old_instruct_content_words(text: str) -> set[str]:
    return {w.lower().strip("'’-") for w in _old_words_of(text) if len(w) >= 4 and w.lower() not in _OLD_STOPWORDS}


def old_vote_winners(keys: list) -> tuple[dict, set]:
    counts = Counter(k for k in keys if k is not None)
    top = max(counts.values()) if counts else None
    return dict(counts), {k for k, n in counts.items() if n == top}


def old_vote_correct(keys: list, correct: list[bool], weights: list[float]) -> float | None:
    totals: dict = defaultdict(float)
    correct_of: dict = {}
    for k, ok, w in zip(keys, correct, weights):
        if k is not None:
            totals[k] += w
            correct_of[k] = ok
    if not totals:
        return None
    top = max(totals.values())
    tied = [k for k, v in totals.items() if v == top]
    return sum(correct_of[k] for k in tied) / len(tied)


# --- the corpus -----------------------------------------------------------------------------------------------
EDGE = ["", " ", "42", "42.", "42?", "3.0", "1,000", "0.50", "+7", "-0.0", ".5", "1e3", "1,00", "Yes.", "yes!",
        " No ; ", "Paris, France.", "The answer is: 12 ", "a\n\tb   c.", "customer_id", "don't", "well-known",
        "'quoted'", "-hyphen-", "Ünïcödé Straße", "İstanbul", "日本語の文", "x_y_z", "SELECT name FROM t;",
        "It's   the year's best", "…", "NaN", "inf", "1,234.50", "00012"]


def _corpus() -> list[str]:
    out = list(EDGE)
    for path in sorted([*ROOT.glob("tests/*.py"), *ROOT.glob("src/opentao/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
                out.extend(node.value.splitlines())
    return out


CORPUS = _corpus()


def test_corpus_is_large() -> None:
    assert len(CORPUS) > 2000


def test_stopword_lists_are_unchanged() -> None:
    assert IDENTIFIER_STOPWORDS == _OLD_STOP and PROSE_STOPWORDS == _OLD_STOPWORDS


def test_normalize_answer_matches_both_old_rules() -> None:
    for text in CORPUS:
        assert normalize_answer(text) == old_vote_normalize(text), text
        assert normalize_answer(text, canonical=False) == old_strategies_normalize(text), text
        # the stored (light) answer keeps everything the vote key needs
        assert normalize_answer(normalize_answer(text, canonical=False)) == normalize_answer(text), text
    assert normalize_answer(None) == ""


def test_content_words_matches_both_old_rules() -> None:
    for text in CORPUS:
        assert content_words(text) == old_guards_content_words(text), text
        assert content_words(text, rule="identifiers", min_len=3) == old_guards_content_words(text), text
        assert content_words(text, rule="prose", min_len=4) == old_instruct_content_words(text), text
    with pytest.raises(ValueError, match="unknown rule"):
        content_words("x", rule="nope")


def test_tally_and_plurality_match_the_counter_votes() -> None:
    for seed in range(500):
        _check_votes(random.Random(seed))


def _check_votes(rng: random.Random) -> None:
    keys = [rng.choice([None, "a", "b", "c", "d", ""]) for _ in range(rng.randint(0, 9))]
    counts, winners = old_vote_winners(keys)
    assert tally(keys) == counts and list(tally(keys)) == list(counts)  # same order of first appearance
    assert set(plurality(tally(keys))) == winners
    correct = [rng.random() < 0.5 for _ in keys]
    weights = [rng.choice([0.0, 0.25, 1 / 3, 1.0, 2.5]) for _ in keys]
    totals = tally(keys, weights)
    tied = plurality(totals)
    ok = {k: c for k, c in zip(keys, correct) if k is not None}
    new = sum(ok[k] for k in tied) / len(tied) if tied else None
    assert new == old_vote_correct(keys, correct, weights)


def test_plurality_keeps_ties_and_order() -> None:
    assert plurality({}) == []
    assert plurality({"b": 2, "a": 2, "c": 1}) == ["b", "a"]
    assert plurality(tally(["x", None, "y", "y"])) == ["y"]
