"""Held-out evaluation for instruction following: every stated constraint passes and the answer is relevant
to the reference (see :mod:`opentao.tasks.instruct`)."""

from __future__ import annotations

from opentao.tasks import instruct


class InstructEvaluator:
    task = "instruct"
    gold_fields = ("constraints", "source", "reference")

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]:
        return instruct.grade(row, prediction)
