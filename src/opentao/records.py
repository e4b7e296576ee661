"""Typed rows that stages exchange through Parquet tables in a run directory.

Every row is keyed by ``round`` and ``prompt_id`` (and ``candidate_id`` where it applies), so a stage can
tell which work is already done and skip it on a re-run. Chat messages are stored as JSON text so the
tables stay flat and easy to query with DuckDB.

A record's Arrow schema is derived from its dataclass (:func:`arrow_schema`), never written by hand: the
dataclass is the one statement of a table's columns.
"""

from __future__ import annotations

import json
import types
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

import pyarrow as pa

Message = dict[str, str]  # {"role": "user" | "system" | "assistant", "content": str}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


_SCALARS: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
T = TypeVar("T", bound=type)


def arrow_type(hint: Any) -> pa.DataType:
    """The Arrow type of a type hint: ``str``/``int``/``float``/``bool`` → string/int64/float64/bool,
    ``X | None`` → the type of ``X``, ``list[X]`` → list of X, ``dict[K, V]`` → map of K to V."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return arrow_type(args[0])
    elif origin is list:
        return pa.list_(arrow_type(get_args(hint)[0]))
    elif origin is dict:
        key, value = get_args(hint)
        return pa.map_(arrow_type(key), arrow_type(value))
    elif hint in _SCALARS:
        return _SCALARS[hint]
    raise TypeError(f"no Arrow type for {hint!r}: give the field metadata={{'arrow': <a pyarrow type>}}")


def arrow_schema(cls: type) -> pa.Schema:
    """The Arrow schema of a dataclass: one column per field.

    * a field's type is ``field(metadata={"arrow": ...})`` when given, ``string`` for a field named in the
      class's ``JSON_FIELDS`` (stored as JSON text), else :func:`arrow_type` of its type hint;
    * the fields named in the class's ``ARROW_LEAD`` come first (the records lead with their ``round`` key), the
      others follow in declaration order;
    * every column is nullable (pyarrow's default, which every table written so far has).
    """
    hints = get_type_hints(cls)
    json_fields = set(getattr(cls, "JSON_FIELDS", ()))
    columns = {}
    for f in fields(cls):
        if "arrow" in f.metadata:
            kind = f.metadata["arrow"]
        elif f.name in json_fields:
            kind = pa.string()
        else:
            kind = arrow_type(hints[f.name])
        columns[f.name] = pa.field(f.name, kind)
    lead = [name for name in getattr(cls, "ARROW_LEAD", ()) if name in columns]
    return pa.schema([columns[n] for n in lead] + [c for n, c in columns.items() if n not in lead])


def with_arrow_schema(cls: T) -> T:
    """Class decorator (above ``@dataclass``): set ``cls.SCHEMA = arrow_schema(cls)``."""
    cls.SCHEMA = arrow_schema(cls)
    return cls


@dataclass
class Row:
    """Base for the records: conversion to and from flat Parquet rows."""

    SCHEMA: ClassVar[pa.Schema]  # set by @with_arrow_schema
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()
    ARROW_LEAD: ClassVar[tuple[str, ...]] = ("round",)

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


@with_arrow_schema
@dataclass
class Prompt(Row):
    """One unlabeled task input. ``messages`` is the plain prompt the model is trained to answer directly."""

    prompt_id: str
    messages: list[Message]
    round: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("messages", "meta")


@with_arrow_schema
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


@with_arrow_schema
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



@with_arrow_schema
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


@with_arrow_schema
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



@with_arrow_schema
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
