"""The ``sql-flights`` task: text-to-SQL over the NYC flights database, graded by execution accuracy.

It exists to run the ``sql`` task's shipped recipe on a database that recipe was not tuned on: the questions come
from the same schema-driven generator with the same build settings (400 questions, seed 0, 35% of them in test,
split by shape), the prompt and the grader are the same, and ``config.yaml`` is the ``sql`` task's with only
``eval.task`` changed.
"""

from __future__ import annotations

from pathlib import Path

from opentao.tasks.base import Task
from opentao.tasks.sql.grade import GOLD_FIELDS, SqlGrader
from opentao.tasks.sql.schema import copy_db_beside

DB_NAME = "flights.sqlite"


class FlightsGrader(SqlGrader):
    """The ``sql`` task's execution-accuracy grader, named for this task (error messages say ``sql-flights``)."""

    task = "sql-flights"


def prepare_flights_task(out_dir: Path, cache: Path | None = None) -> dict:
    """Build the task files once (train prompts without labels; test with gold), with a copy of the database
    beside them (copied to a temp name, then renamed)."""
    from opentao.tasks.sql.chinook import write_sql_task
    from opentao.tasks.sql_flights.flights import ensure_flights_db

    out_dir = Path(out_dir)
    if (out_dir / "test.jsonl").is_file() and (out_dir / DB_NAME).is_file():
        return {"dir": str(out_dir), "cached": True}
    db = ensure_flights_db(cache)
    info = write_sql_task(db, out_dir, n=400, seed=0, test_frac=0.35)
    copy_db_beside(db, out_dir, DB_NAME)
    return info


TASK = Task(
    name="sql-flights",
    gold_fields=GOLD_FIELDS,
    gold_output="sql",
    needs_db=True,
    config_path=Path(__file__).with_name("config.yaml"),
    build=prepare_flights_task,
    make_grader=FlightsGrader,
    folder="nycflights13-sql",
    title="text-to-SQL (NYC flights)",
    order=10,
    db_name=DB_NAME,
)
