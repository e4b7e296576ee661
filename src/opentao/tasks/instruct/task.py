"""The ``instruct`` task: verifiable instruction following; graded by every constraint and relevance."""

from __future__ import annotations

from pathlib import Path

from opentao.tasks.base import RowGrader, Task
from opentao.tasks.instruct.grade import GOLD_FIELDS, grade


def _build(out_dir: Path) -> dict:
    from opentao.tasks.instruct.data import build_instruct_task

    return build_instruct_task(out_dir)


TASK = Task(
    name="instruct",
    gold_fields=GOLD_FIELDS,
    gold_output="gold",
    needs_db=False,
    config_path=Path(__file__).with_name("config.yaml"),
    build=_build,
    title="instruction following (XSum + NQ)",
    order=2,
    make_grader=lambda _db=None: RowGrader("instruct", GOLD_FIELDS, grade),
)
