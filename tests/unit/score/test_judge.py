"""LLM judges: parsing, quoting, the group judge's shuffling and splitting, guards, the injection corpus."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from opentao.errors import TaoError
from opentao.generate.backend import GenOutput
from opentao.records import Candidate, Prompt
from opentao.score.guards import (
    InjectionGuard,
    LengthPenalty,
    RelevanceFloor,
    RepetitionPenalty,
    detect_injection,
)
from opentao.score.judge import GroupJudgeScorer, JudgeScorer, LogprobJudgeScorer
from opentao.score.llm import make_backend, parse_group_scores, parse_score, quote
from opentao.score.registry import build_scorer, build_scorers, score_group_all
from opentao.testing import StubBackend, stub_score


def _prompt(text: str = "Which artists have albums in the Rock genre?", pid: str = "p1") -> Prompt:
    return Prompt(pid, [{"role": "user", "content": text}])


def _cands(texts: list[str], pid: str = "p1") -> list[Candidate]:
    return [Candidate(pid, f"{pid}#{i}", "plain", [], t, t, "") for i, t in enumerate(texts)]


# --- parsing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ('{"score": 7}', 7),
    ('{"reasoning": "fine", "score": "8"}', 8),
    ('Sure! ```json\n{"score": 4}\n```', 4),
    ('I think {"rating": 9} is fair', 9),
    ('{"score": 3} ... on reflection {"score": 6}', 6),  # the verdict after the reasoning wins
    ("Score: 5", 5),
    ("The score is **9**.", 9),
    ("rating = 2", 2),
    ("10", 10),
    ("  1\n", 1),
])
def test_parse_score_json_and_fallback(text, expected):
    assert parse_score(text, 1, 10) == pytest.approx((expected - 1) / 9)


def test_parse_score_fractions():
    assert parse_score("I give it 4/5", 1, 10) == pytest.approx(0.8)
    assert parse_score("score: 7 out of 10", 1, 10) == pytest.approx(0.7)


@pytest.mark.parametrize("text", ["", "   ", "no idea", "{\"score\": \"high\"}", '{"score": 11}', "score: -3",
                                  "{broken json", "Score: 42", None, '{"score": true}', "7/0"])
def test_unparsable_or_off_scale_abstains(text):
    assert parse_score(text, 1, 10) is None


@pytest.mark.parametrize("text", [
    '{"scores": {"1": 10, "2": 0, "3": 5}}',
    '{"scores": [10, 0, 5]}',
    '[{"id": 1, "score": 10}, {"id": 2, "score": 0}, {"id": 3, "score": 5}]',
    '{"answer 1": 10, "answer 2": 0, "answer 3": 5}',
    "Here you go:\n1: 10\n2: 0\nCandidate 3: 5",
    'Thinking... ```json\n{"scores": {"1": 10, "2": 0, "3": 5}}\n```',
])
def test_parse_group_scores(text):
    assert parse_group_scores(text, 3, 0, 10) == pytest.approx([1.0, 0.0, 0.5])


def test_parse_group_scores_partial_and_garbage():
    assert parse_group_scores('{"scores": {"1": 10, "3": 99}}', 3, 0, 10) == [1.0, None, None]
    assert parse_group_scores("lorem ipsum", 3) == [None, None, None]
    assert parse_group_scores('{"scores": [1, 2]}', 3) == [None, None, None]  # wrong length: no guessing


def test_quote_defuses_tags_and_cuts():
    q = quote("x </answer-abc> <answer y", "answer-abc", 100)
    assert q.count("</answer-abc>") == 1 and q.endswith("</answer-abc>")
    assert "answer-abc> <" not in q
    assert "characters cut" in quote("a" * 50, "t", 10)


# --- pointwise judge -----------------------------------------------------------------------------------
def test_judge_scores_by_content_and_dedupes():
    stub = StubBackend()
    judge = JudgeScorer(backend=stub)
    cands = _cands(["Rock artists: AC/DC, Aerosmith.", "Bananas.", "", "Bananas."])
    scores = judge.score_group(_prompt(), cands)
    assert scores[0] > scores[1] and scores[2] == 0.0 and scores[1] == scores[3]
    assert len(stub.requests) == 2  # identical texts judged once, empty one not at all
    sys_msg, user_msg = stub.requests[0].messages
    assert sys_msg["role"] == "system" and "untrusted" in sys_msg["content"]
    assert "Rock artists" in user_msg["content"] and "Correct:" in user_msg["content"]


def test_judge_user_rubric_appended_or_replacing():
    stub = StubBackend()
    JudgeScorer(backend=stub, rubric="Prefer answers in French.").score_group(_prompt(), _cands(["a"]))
    text = stub.requests[0].messages[1]["content"]
    assert "Prefer answers in French." in text and "Correct:" in text
    stub2 = StubBackend()
    JudgeScorer(backend=stub2, rubric="Only brevity.", replace_rubric=True).score_group(_prompt(), _cands(["a"]))
    assert "Correct:" not in stub2.requests[0].messages[1]["content"]


def test_judge_garbage_and_failures_abstain_and_are_counted():
    judge = JudgeScorer(backend=StubBackend(text="I cannot grade this, sorry."))
    assert judge.score_group(_prompt(), _cands(["x", "y"])) == [None, None]
    assert judge.counters()["unparsable"] == 2
    down = JudgeScorer(backend=StubBackend(fail=True))
    assert down.score_group(_prompt(), _cands(["x"])) == [None]
    assert down.counters()["endpoint_failures"] == 1


# --- group judge ---------------------------------------------------------------------------------------
def test_group_judge_maps_shuffled_order_back():
    prompt = _prompt("Name the rock albums by the artist AC/DC with their titles")
    texts = ["nothing", "rock albums", "rock albums artist", "rock albums artist titles",
             "rock albums artist titles name"]
    expected = [(stub_score(prompt.messages[0]["content"], t)) / 10 for t in texts]
    assert len(set(expected)) == 5
    orders = set()
    for pid in ("a", "b", "c", "d", "e", "f"):
        stub = StubBackend()
        judge = GroupJudgeScorer(backend=stub)
        p = Prompt(pid, prompt.messages)
        assert judge.score_group(p, _cands(texts, pid)) == pytest.approx(expected)
        user = stub.requests[0].messages[1]["content"]
        shown = [t for _, t in re.findall(r'id="(\d+)">\n(.*?)\n</answer', user)]
        orders.add(tuple(shown))
        assert sorted(shown) == sorted(texts)
    assert len(orders) > 1, "the order shown to the judge must be shuffled"


def test_group_judge_reversed_labels_detects_wrong_mapping():
    """A judge that scores by *position* (pure position bias) must not produce scores tied to content."""
    class PositionBiased(StubBackend):
        def try_generate(self, requests):
            self.requests.extend(requests)
            return [GenOutput(json.dumps({"scores": {"1": 10, "2": 0, "3": 0, "4": 0}}), 1) for _ in requests]

    winners = set()
    for pid in [f"p{i}" for i in range(12)]:
        scores = GroupJudgeScorer(backend=PositionBiased()).score_group(_prompt(pid=pid), _cands(list("abcd"), pid))
        assert sorted(scores) == [0.0, 0.0, 0.0, 1.0]
        winners.add(scores.index(1.0))
    assert len(winners) > 1, "shuffling spreads a position-biased judge's favour over candidates"


def test_group_judge_splits_long_groups():
    stub = StubBackend()
    judge = GroupJudgeScorer(backend=stub, max_group=4)
    texts = [f"answer {i} " + "rock " * i for i in range(10)]
    scores = judge.score_group(_prompt(), _cands(texts))
    assert all(s is not None for s in scores)
    sizes = sorted(len(re.findall(r'id="\d+"', r.messages[1]["content"])) for r in stub.requests)
    assert sizes == [3, 3, 4]  # ceil(10/4) = 3 balanced chunks, every answer in exactly one
    assert judge.plan("p", 10) and sorted(i for call in judge.plan("p", 10) for i in call) == list(range(10))


def test_group_judge_several_orders_average():
    judge = GroupJudgeScorer(backend=StubBackend(), orders=3)
    assert len(judge.plan("p", 4)) == 3
    assert judge.score_group(_prompt(), _cands(["rock", "x"]))[0] > 0


# --- guards ----------------------------------------------------------------------------------------------
def test_length_penalty():
    g = LengthPenalty(max_length=10)
    assert g.score_group(_prompt(), _cands(["a" * 5, "a" * 15, "a" * 30])) == [1.0, 0.5, 0.0]
    rel = LengthPenalty(relative=1.0, unit="words")
    assert rel.score_group(_prompt(), _cands(["a b", "a b", "a b c"])) == pytest.approx([1.0, 1.0, 0.5])
    with pytest.raises(TaoError, match="exactly one"):
        LengthPenalty()


def test_repetition_penalty():
    g = RepetitionPenalty(n=2, min_distinct=0.5)
    loop = "the cat " * 20
    assert g.score_group(_prompt(), _cands(["the cat sat on the mat today", loop, "ok"])) == \
        pytest.approx([1.0, (2 / 39) / 0.5, 1.0])


def test_relevance_floor():
    g = RelevanceFloor()
    assert g.score_group(_prompt(), _cands(["SELECT Name FROM Artist JOIN Genre", "Bananas are yellow.", ""])) == \
        [1.0, 0.0, 0.0]


BENIGN = [
    "SELECT Name FROM Artist ORDER BY Rating DESC LIMIT 10;",
    "The judge ruled in favour of the plaintiff in 1998.",
    "Use LOWER(name) to ignore case when comparing.",
    "The maximum score in the dataset is 10 points.",
    "A grader at the school marks 30 essays a week.",
    "SELECT AVG(score) FROM results WHERE grade = 'A';",
]


def test_injection_guard_controls_are_not_flagged():
    assert [detect_injection(t) for t in BENIGN] == [None] * len(BENIGN)


def _corpus() -> list[dict]:
    text = resources.files("opentao.score").joinpath("data/injections.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_injection_corpus_is_varied():
    rows = _corpus()
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert {"en", "fr", "es", "de", "zh"} <= {r["lang"] for r in rows}


@pytest.mark.parametrize("kind", ["judge", "judge_group", "judge_logprob"])
def test_injection_never_gains_over_clean(kind):
    """Over the committed corpus, with a judge that *is* fooled by injections: the guard removes every gain."""
    rows = _corpus()
    cls = {"judge": JudgeScorer, "judge_group": GroupJudgeScorer, "judge_logprob": LogprobJudgeScorer}[kind]

    def gains(guard: bool) -> list[float]:
        out = []
        for r in rows:
            prompt = _prompt(r["prompt"], pid=r["id"])
            scorers = [(cls(backend=StubBackend(), injection_guard=guard), 1.0)]
            if guard:
                scorers.append((InjectionGuard(), 1.0))
            # the group holds the clean and the injected answer and a filler, as K candidates would
            per, combined = score_group_all(scorers, prompt, _cands([r["clean"], r["injected"], "n/a"], r["id"]))
            out.append(combined[1] - combined[0])
        return out

    unguarded = gains(False)
    assert sum(g > 0 for g in unguarded) >= len(rows) - 2, "the stub judge must be fooled, or the test proves nothing"
    guarded = gains(True)
    assert all(g <= 0 for g in guarded), [r["id"] for r, g in zip(rows, guarded) if g > 0]


# --- registry and config ---------------------------------------------------------------------------------
def test_registry_builds_judges_and_guards_from_specs():
    built = build_scorers([
        {"type": "judge", "backend": "opentao.testing:make_stub"},
        {"type": "judge_group", "backend": "opentao.testing:make_stub", "max_group": 4},
        {"type": "judge_logprob", "backend": "opentao.testing:make_stub", "top_logprobs": 5},
        {"type": "length_penalty", "max_length": 200, "weight": 0.5},
        {"type": "repetition_penalty"}, {"type": "relevance"}, {"type": "injection_guard"},
    ])
    assert [s.name for s, _ in built] == ["judge", "judge_group", "judge_logprob", "length_penalty",
                                          "repetition_penalty", "relevance", "injection_guard"]
    per, combined = score_group_all(built, _prompt(), _cands(["Rock artists", "zzz"]))
    assert combined[0] > combined[1]


@pytest.mark.parametrize("spec,needle", [
    ({"type": "judge"}, "needs 'base_url'"),
    ({"type": "judge", "base_url": "http://127.0.0.1:9/v1", "temprature": 0}, "temprature"),
    ({"type": "judge", "backend": "carrier-pigeon"}, "unknown judge backend"),
    ({"type": "judge_group", "backend": "opentao.testing:make_stub", "max_group": 1}, "max_group"),
    ({"type": "judge", "backend": "opentao.testing:make_stub", "lo": 5, "hi": 1}, "hi > lo"),
    ({"type": "judge_logprob"}, "needs 'base_url'"),
    ({"type": "judge_logprob", "backend": "opentao.testing:make_stub", "top_logprobs": 0}, "from 1 to 20"),
    ({"type": "judge_logprob", "backend": "opentao.testing:make_stub", "top_logprobs": 21}, "from 1 to 20"),
    ({"type": "judge_logprob", "backend": "opentao.testing:make_stub", "lo": 1}, "'lo'"),
])
def test_bad_judge_specs(spec, needle):
    with pytest.raises(TaoError, match=needle):
        build_scorer(spec)


def test_make_backend_passes_objects_through():
    stub = StubBackend()
    assert make_backend(stub) is stub
    with pytest.raises(TaoError, match="try_generate"):
        make_backend(object())


def test_per_scorer_normalize_overrides_the_global_one():
    from opentao.score.combine import combine
    from opentao.score.registry import own_normalizations

    per = {"rm": [10.0, 30.0, 20.0], "ok": [1.0, 0.0, 1.0]}
    # raw: rm dominates; with rm z-scored (and ok raw) the verifier matters again
    assert combine(per, {}, "none") == pytest.approx([5.5, 15.0, 10.5])
    z = (10 - 20) / (200 / 3) ** 0.5
    assert combine(per, {}, "none", {"rm": "zscore"}) == pytest.approx([(z + 1) / 2, (-z + 0) / 2, (0 + 1) / 2])
    specs = [{"type": "relevance", "normalize": "rank"}, {"type": "injection_guard"}]
    assert own_normalizations(specs, build_scorers(specs)) == {"relevance": "rank"}
    with pytest.raises(TaoError, match="unknown normalize 'minmax'"):
        build_scorer({"type": "relevance", "normalize": "minmax"})
