"""Task name → evaluator. ``sql`` needs a database; the others grade from the eval row alone."""

from __future__ import annotations

from pathlib import Path

from opentao.errors import TaoError
from opentao.evaluate.base import TaskEvaluator

TASKS = ("sql", "docqa", "instruct")


def get_evaluator(task: str, db: str | Path | None = None) -> TaskEvaluator:
    if task == "sql":
        from opentao.evaluate.sql import SqlEvaluator

        if not db:
            raise TaoError("sql evaluation needs a database: set 'db:' or 'eval.db:' (or --db)")
        return SqlEvaluator(db)
    if task == "docqa":
        from opentao.evaluate.docqa import DocQAEvaluator

        return DocQAEvaluator()
    if task == "instruct":
        from opentao.evaluate.instruct import InstructEvaluator

        return InstructEvaluator()
    raise TaoError(f"unknown task {task!r}: available: {', '.join(TASKS)}")
