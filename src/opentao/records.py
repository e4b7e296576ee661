"""Typed rows that stages exchange through Parquet tables in a run directory.

Every row is keyed by ``round`` and ``prompt_id`` (and ``candidate_id`` where it applies), so a stage can
tell which work is already done and skip it on a re-run. Chat messages are stored as JSON text so the
tables stay flat and easy to query with DuckDB.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import pyarrow as pa

Message = dict[str, str]  # {"role": "user" | "system" | "assistant", "content": str}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


@dataclass
class Row:
    """Base for the records: conversion to and from flat Parquet rows."""

    SCHEMA: ClassVar[pa.Schema]
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        for name in self.JSON_FIELDS:
            row[name] = _dumps(row[name])
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]):
        kwargs = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        for name in cls.JSON_FIELDS:
            if isinstance(kwargs.get(name), str):
                kwargs[name] = json.loads(kwargs[name])
        return cls(**kwargs)


@dataclass
class Prompt(Row):
    """One unlabeled task input. ``messages`` is the plain prompt the model is trained to answer directly."""

    prompt_id: str
    messages: list[Message]
    round: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("messages", "meta")
    SCHEMA: ClassVar[pa.Schema] = pa.schema(
        [("round", pa.int64()), ("prompt_id", pa.string()), ("messages", pa.string()), ("meta", pa.string())]
    )


@dataclass
class Candidate(Row):
    """One sampled response.

    ``source_messages`` is what the model was actually prompted with (it may carry a chain-of-thought
    instruction or a system-prompt variant); ``text`` is the raw sample; ``response`` is what to train on
    under the *plain* prompt (e.g. only the final SQL, without the reasoning); ``answer`` is the normalized
    final answer used for voting ("" when none could be extracted).
    """

    prompt_id: str
    candidate_id: str
    strategy: str
    source_messages: list[Message]
    text: str
    response: str
    answer: str
    round: int = 0
    temperature: float = 0.0
    num_tokens: int = 0

    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("source_messages",)
    SCHEMA: ClassVar[pa.Schema] = pa.schema(
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
    )


@dataclass
class Score(Row):
    """One scorer's rating of one candidate. ``score`` is None when the scorer abstained.

    The combined reward used for training is stored with ``scorer == "combined"``.
    """

    prompt_id: str
    candidate_id: str
    scorer: str
    score: float | None
    round: int = 0

    SCHEMA: ClassVar[pa.Schema] = pa.schema(
        [
            ("round", pa.int64()),
            ("prompt_id", pa.string()),
            ("candidate_id", pa.string()),
            ("scorer", pa.string()),
            ("score", pa.float64()),
        ]
    )


@dataclass
class TrainExample(Row):
    """One training example built from scored candidates.

    ``kind`` names the method that built it: "rft" (prompt → chosen, from the rewards), "sft" (prompt → a gold
    output, labeled fine-tuning), "dpo" (prompt → chosen preferred over rejected) or "grpo" (prompt → one sampled
    response weighted by its group-relative ``advantage``).
    """

    prompt_id: str
    kind: str
    prompt_messages: list[Message]
    chosen: str
    rejected: str = ""
    chosen_id: str = ""
    rejected_id: str = ""
    chosen_score: float = 0.0
    rejected_score: float = 0.0
    round: int = 0
    advantage: float = 0.0

    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("prompt_messages",)
    SCHEMA: ClassVar[pa.Schema] = pa.schema(
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
    )


@dataclass
class EvalResult(Row):
    """One graded answer of one model on one held-out example (gold is used here and nowhere else)."""

    model: str
    example_id: str
    prediction: str
    correct: bool
    round: int = 0
    num_tokens: int = 0
    error: str = ""

    SCHEMA: ClassVar[pa.Schema] = pa.schema(
        [
            ("round", pa.int64()),
            ("model", pa.string()),
            ("example_id", pa.string()),
            ("prediction", pa.string()),
            ("correct", pa.bool_()),
            ("num_tokens", pa.int64()),
            ("error", pa.string()),
        ]
    )


@dataclass
class Integrity(Row):
    """One scorer's reward-integrity metrics for one round, against optional gold labels (never trained on).

    See :mod:`opentao.score.integrity` for the definitions; a metric that cannot be computed is None.
    """

    scorer: str
    role: str  # scorer | guard | combined
    groups: int
    scored_groups: int
    candidates: int
    abstain_share: float | None
    best_of_k: float | None
    mean_acc: float | None
    oracle: float | None
    auc: float | None
    auc_within: float | None
    mixed_groups: int
    zero_var: float | None
    vote_acc: float | None
    verdict: str
    degenerate_paid: int = 0
    round: int = 0

    METRICS: ClassVar[tuple[str, ...]] = (
        "role", "groups", "scored_groups", "candidates", "abstain_share", "best_of_k", "mean_acc", "oracle", "auc",
        "auc_within", "mixed_groups", "zero_var", "vote_acc", "verdict", "degenerate_paid",
    )
    SCHEMA: ClassVar[pa.Schema] = pa.schema(
        [("round", pa.int64()), ("scorer", pa.string()), ("role", pa.string()), ("groups", pa.int64()),
         ("scored_groups", pa.int64()), ("candidates", pa.int64()), ("abstain_share", pa.float64()),
         ("best_of_k", pa.float64()), ("mean_acc", pa.float64()), ("oracle", pa.float64()), ("auc", pa.float64()),
         ("auc_within", pa.float64()), ("mixed_groups", pa.int64()), ("zero_var", pa.float64()),
         ("vote_acc", pa.float64()), ("verdict", pa.string()), ("degenerate_paid", pa.int64())]
    )
