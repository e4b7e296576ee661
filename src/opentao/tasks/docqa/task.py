"""The ``docqa`` task: answer a question from a given passage; graded by yes/no or SQuAD exact match."""

from __future__ import annotations

from pathlib import Path

from opentao.tasks.base import RowGrader, Task
from opentao.tasks.docqa.grade import GOLD_FIELDS, grade


def _build(out_dir: Path) -> dict:
    from opentao.tasks.docqa.data import build_docqa_task

    return build_docqa_task(out_dir)


TASK = Task(
    name="docqa",
    gold_fields=GOLD_FIELDS,
    gold_output="answer",
    needs_db=False,
    config_path=Path(__file__).with_name("config.yaml"),
    build=_build,
    title="document QA (BoolQ + DisflQA)",
    order=1,
    make_grader=lambda _db=None: RowGrader("docqa", GOLD_FIELDS, grade),
)
