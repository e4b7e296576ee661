"""The ``sql`` task: text-to-SQL over the Chinook database, graded by execution accuracy."""

from __future__ import annotations

from pathlib import Path

from opentao.tasks.base import Task
from opentao.tasks.sql.grade import GOLD_FIELDS, SqlGrader
from opentao.tasks.sql.schema import copy_db_beside

DB_NAME = "chinook.sqlite"


def prepare_sql_task(out_dir: Path) -> dict:
    """Build the Chinook text-to-SQL task files once (train prompts without labels; test with gold), with a copy of
    the database beside them."""
    from opentao.tasks.sql.chinook import build_sql_task

    out_dir = Path(out_dir)
    if (out_dir / "test.jsonl").is_file() and (out_dir / DB_NAME).is_file():
        return {"dir": str(out_dir), "cached": True}
    info = build_sql_task(out_dir)
    db = Path(info["db"])
    copy_db_beside(db, out_dir, DB_NAME)
    return info


TASK = Task(
    name="sql",
    gold_fields=GOLD_FIELDS,
    gold_output="sql",
    needs_db=True,
    config_path=Path(__file__).with_name("config.yaml"),
    build=prepare_sql_task,
    make_grader=SqlGrader,
    folder="chinook-sql",
    title="text-to-SQL (Chinook)",
    order=0,
    db_name=DB_NAME,
    aliases=("sql-chinook", "chinook-sql"),
)
