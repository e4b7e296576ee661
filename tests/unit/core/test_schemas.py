"""Arrow schemas derived from the record dataclasses equal the hand-written schemas they replaced.

The hand-written schemas are frozen below verbatim (records.py, serve/log.py, flywheel.py before the change):
field order, types and nullability must stay exactly these, or tables written before and after would differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pytest

from opentao.flywheel import DECISION_SCHEMA, Decision
from opentao.records import (Candidate, EvalResult, Integrity, Message, Prompt, Score, TrainExample, arrow_schema,
                             arrow_type)
from opentao.serve import log as serve_log

FROZEN = {
    Prompt: pa.schema(
        [("round", pa.int64()), ("prompt_id", pa.string()), ("messages", pa.string()), ("meta", pa.string())]
    ),
    Candidate: pa.schema(
        [
            ("round", pa.int64()),
            ("prompt_id", pa.string()),
            ("candidate_id", pa.string()),
            ("strategy", pa.string()),
            ("source_messages", pa.string()),
            ("text", pa.string()),
            ("response", pa.string()),
            ("answer", pa.string()),
            ("temperature", pa.float64()),
            ("num_tokens", pa.int64()),
        ]
    ),
    Score: pa.schema(
        [
            ("round", pa.int64()),
            ("prompt_id", pa.string()),
            ("candidate_id", pa.string()),
            ("scorer", pa.string()),
            ("score", pa.float64()),
        ]
    ),
    TrainExample: pa.schema(
        [
            ("round", pa.int64()),
            ("prompt_id", pa.string()),
            ("kind", pa.string()),
            ("prompt_messages", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("chosen_id", pa.string()),
            ("rejected_id", pa.string()),
            ("chosen_score", pa.float64()),
            ("rejected_score", pa.float64()),
            ("advantage", pa.float64()),
        ]
    ),
    EvalResult: pa.schema(
        [
            ("round", pa.int64()),
            ("model", pa.string()),
            ("example_id", pa.string()),
            ("prediction", pa.string()),
            ("correct", pa.bool_()),
            ("num_tokens", pa.int64()),
            ("error", pa.string()),
        ]
    ),
    Integrity: pa.schema(
        [("round", pa.int64()), ("scorer", pa.string()), ("role", pa.string()), ("groups", pa.int64()),
         ("scored_groups", pa.int64()), ("candidates", pa.int64()), ("abstain_share", pa.float64()),
         ("best_of_k", pa.float64()), ("mean_acc", pa.float64()), ("oracle", pa.float64()), ("auc", pa.float64()),
         ("auc_within", pa.float64()), ("mixed_groups", pa.int64()), ("zero_var", pa.float64()),
         ("vote_acc", pa.float64()), ("verdict", pa.string()), ("degenerate_paid", pa.int64())]
    ),
}

FROZEN_INFERENCE = pa.schema(
    [
        ("seq", pa.int64()),
        ("request_id", pa.string()),
        ("time", pa.float64()),
        ("key_id", pa.string()),
        ("model_version", pa.string()),
        ("endpoint", pa.string()),
        ("messages", pa.string()),
        ("params", pa.string()),
        ("response", pa.string()),
        ("choices", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("status", pa.int64()),
        ("error", pa.string()),
        ("metadata", pa.string()),
        ("redacted", pa.bool_()),
    ]
)
FROZEN_INFERENCE_DEFAULTS = {"prompt_tokens": 0, "completion_tokens": 0, "latency_ms": 0.0, "status": 0,
                             "redacted": False, "time": 0.0, "seq": 0}

FROZEN_DECISIONS = pa.schema([
    ("kind", pa.string()), ("round", pa.int64()), ("time", pa.float64()), ("promoted", pa.bool_()),
    ("current_version", pa.string()), ("candidate_version", pa.string()), ("served_after", pa.string()),
    ("current_score", pa.float64()), ("candidate_score", pa.float64()), ("margin", pa.float64()),
    ("evaluator", pa.string()), ("n_eval", pa.int64()), ("n_prompts", pa.int64()), ("reason", pa.string()),
    ("details", pa.string()), ("confidence", pa.float64()), ("p_value", pa.float64()),
])


def _same(a: pa.Schema, b: pa.Schema) -> None:
    assert a == b and a.equals(b, check_metadata=True)
    assert [(f.name, f.type, f.nullable) for f in a] == [(f.name, f.type, f.nullable) for f in b]


@pytest.mark.parametrize("cls", list(FROZEN), ids=lambda c: c.__name__)
def test_record_schemas_equal_the_hand_written_ones(cls) -> None:
    _same(cls.SCHEMA, FROZEN[cls])
    _same(arrow_schema(cls), FROZEN[cls])


def test_inference_and_decision_schemas_equal_the_hand_written_ones() -> None:
    _same(serve_log.SCHEMA, FROZEN_INFERENCE)
    _same(DECISION_SCHEMA, FROZEN_DECISIONS)
    _same(arrow_schema(Decision), FROZEN_DECISIONS)
    assert serve_log.COLUMNS == tuple(FROZEN_INFERENCE.names)
    # normalize_row fills a missing column as before: the old defaults, "" for every other column
    assert serve_log.normalize_row({}) == {n: FROZEN_INFERENCE_DEFAULTS.get(n, "") for n in FROZEN_INFERENCE.names}


def test_type_mapping_and_overrides() -> None:
    assert arrow_type(int) == pa.int64() and arrow_type(bool) == pa.bool_() and arrow_type(float | None) == pa.float64()
    assert arrow_type(list[str]) == pa.list_(pa.string())
    assert arrow_type(list[Message]) == pa.list_(pa.map_(pa.string(), pa.string()))
    assert arrow_type(list[list[Message]]) == pa.list_(pa.list_(pa.map_(pa.string(), pa.string())))

    @dataclass
    class Row:
        a: str
        b: list[int] | None = None
        c: dict = field(default_factory=dict, metadata={"arrow": pa.large_string()})
        round: int = 0
        ARROW_LEAD = ("round",)

    assert arrow_schema(Row) == pa.schema([("round", pa.int64()), ("a", pa.string()), ("b", pa.list_(pa.int64())),
                                           ("c", pa.large_string())])
    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_type(dict)
    with pytest.raises(TypeError, match="no Arrow type"):
        arrow_type(int | str)
