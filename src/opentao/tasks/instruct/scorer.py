"""The label-free instruct reward (a scorer plug-in)."""

from __future__ import annotations

from opentao.records import Candidate, Prompt
from opentao.tasks.instruct.constraints import check, min_overlap_for, relevant
from opentao.tasks.instruct.prompts import parse_prompt

__all__ = ["ConstraintScorer"]


class ConstraintScorer:
    """Label-free instruct reward: share of the prompt's constraints that pass × relevance to the source.

    Plug-in spec: ``{type: "opentao.tasks.instruct:ConstraintScorer"}``. Abstains on non-instruct prompts.
    ``all_or_nothing=True`` gives 1 only when every constraint passes (the gold metric's shape).
    """

    def __init__(self, all_or_nothing: bool = False, name: str = "instruct_constraints") -> None:
        self.all_or_nothing = bool(all_or_nothing)
        self.name = name

    def score_one(self, text: str, source_kind: str, source: str, constraints: list[dict]) -> float:
        if not relevant(text, source, constraints, min_overlap_for(source_kind)):
            return 0.0
        passed = sum(check(c, text) for c in constraints)
        if self.all_or_nothing:
            return float(passed == len(constraints))
        return passed / len(constraints) if constraints else 1.0

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        parsed = parse_prompt(prompt.messages)
        if parsed is None or not parsed[2]:
            return [None] * len(candidates)
        kind, source, constraints = parsed
        return [self.score_one(c.response, kind, source, constraints) for c in candidates]
