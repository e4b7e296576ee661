"""Held-out evaluation for document QA: yes/no match (BoolQ) or SQuAD-normalized exact match (spans)."""

from __future__ import annotations

from opentao.tasks import docqa


class DocQAEvaluator:
    task = "docqa"
    gold_fields = ("kind", "answer")

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]:
        return docqa.grade(row, prediction)
