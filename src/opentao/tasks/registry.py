"""The one list of tasks. Task folders register themselves through :func:`register_task` when
:mod:`opentao.tasks` is imported (importing this module imports that package first, so the list is complete)."""

from __future__ import annotations

import warnings
from typing import Any

from opentao.errors import TaoError

__all__ = ["ALIASES", "TASKS", "get_task", "register_task", "task_names"]

TASKS: dict[str, Any] = {}  # name -> opentao.tasks.base.Task
ALIASES: dict[str, str] = {}  # old spelling -> name (accepted with a deprecation warning)


def register_task(task: Any, *, replace: bool = False) -> Any:
    """Add ``task`` (an :class:`opentao.tasks.base.Task`) to the registry under ``task.name``; returns it."""
    if task.name in TASKS and not replace:
        raise TaoError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    for alias in task.aliases:
        ALIASES[alias] = task.name
    return task


def unregister_task(name: str) -> None:
    """Remove a task and its aliases (for tests that register a toy task)."""
    TASKS.pop(name, None)
    for alias in [a for a, n in ALIASES.items() if n == name]:
        del ALIASES[alias]


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def canonical_name(name: str) -> str:
    """``name``, or the task an old spelling stands for (with a DeprecationWarning); TaoError when unknown."""
    if name in TASKS:
        return name
    if name in ALIASES:
        warnings.warn(f"task name {name!r} is deprecated: use {ALIASES[name]!r}", DeprecationWarning, stacklevel=3)
        return ALIASES[name]
    raise TaoError(f"unknown task {name!r}: available: {', '.join(TASKS)}")


def get_task(name: str) -> Any:
    """The registered task ``name`` (old spellings accepted with a DeprecationWarning); TaoError listing the
    names when unknown."""
    return TASKS[canonical_name(name)]
