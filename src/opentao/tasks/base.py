"""What a task is: its data preparation, its gold grader and its default run config, behind one small object.

A task folder (``opentao/tasks/<name>/``) builds a :class:`Task` and the registry (:mod:`opentao.tasks`) lists
it. Everything that needs to know about tasks — the config's ``eval.task``, ``tao eval``, ``tao prepare``, the
integrity check of ``tao score --gold``, the flywheel's labeled gate, the benchmark — asks the registry.

Prepared files (in ``<cache>/tasks/<folder>/`` unless another folder is given):

* ``train.jsonl`` — ``{"id", "messages"}`` only: TAO never sees labels;
* ``train_gold.jsonl`` — the train rows with their gold (field :attr:`Task.gold_output` holds the gold training
  output), for the benchmark's labeled arms and ``tao score --gold``;
* ``test.jsonl`` — held-out rows with ``messages`` and the :attr:`Task.gold_fields` that :meth:`Grader.grade` reads;
* the database (``chinook.sqlite`` for SQL) when :attr:`Task.needs_db`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from opentao.errors import TaoError

__all__ = ["Grader", "RowGrader", "Task"]


@runtime_checkable
class Grader(Protocol):
    """Grades one prediction (a model's whole answer text) against one eval row holding the gold fields."""

    task: str
    gold_fields: tuple[str, ...]

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class RowGrader:
    """A :class:`Grader` that needs nothing but the row: ``grade_fn(row, prediction) -> (correct, reason)``."""

    task: str
    gold_fields: tuple[str, ...]
    grade_fn: Callable[[dict, str], tuple[bool, str]]

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]:
        return self.grade_fn(row, prediction)


@dataclass(frozen=True)
class Task:
    """One task: how to build its files, how to grade against its gold, and its default config.

    ``build(out_dir)`` writes the task files into ``out_dir``; ``ready(out_dir)`` says whether they are
    already complete (default: ``test.jsonl`` exists, plus the database when ``needs_db``). ``make_grader(db)``
    returns the :class:`Grader`. ``folder`` is the cache folder name (``chinook-sql`` for SQL, kept so existing
    caches stay valid); ``title`` names the task in reports; ``order`` places it in the registry (and reports).
    """

    name: str
    gold_fields: tuple[str, ...]
    gold_output: str
    needs_db: bool
    config_path: Path
    build: Callable[[Path], Any]
    make_grader: Callable[[str | None], Grader]
    folder: str = ""
    title: str = ""
    order: int = 100
    db_name: str | None = None
    ready: Callable[[Path], bool] | None = None
    aliases: tuple[str, ...] = field(default=())

    def cache_folder(self) -> Path:
        from opentao.paths import cache_dir

        return cache_dir() / "tasks" / (self.folder or self.name)

    def is_prepared(self, task_dir: Path) -> bool:
        if self.ready is not None:
            return self.ready(task_dir)
        files = self.files(task_dir)
        return all(Path(p).is_file() for p in (files["test"], files["db"]) if p)

    def prepare(self, out_dir: Path | None = None) -> Path:
        """Build the task files once (in the cache folder unless ``out_dir``) and return their folder."""
        out = Path(out_dir) if out_dir is not None else self.cache_folder()
        if not self.is_prepared(out):
            self.build(out)
        return out

    def files(self, task_dir: Path) -> dict[str, str | None]:
        """Paths of the prepared files: ``prompts``, ``gold``, ``test`` and ``db`` (None without a database)."""
        d = Path(task_dir)
        return {"prompts": str(d / "train.jsonl"), "gold": str(d / "train_gold.jsonl"), "test": str(d / "test.jsonl"),
                "db": str(d / self.db_name) if self.needs_db and self.db_name else None}

    def grader(self, db: str | Path | None = None) -> Grader:
        """The gold grader (``db``: the SQLite database, for tasks that need one)."""
        if self.needs_db and not db:
            raise TaoError(f"{self.name} evaluation needs a database: set 'db:' or 'eval.db:' (or --db)")
        return self.make_grader(str(db) if db else None)

    def config(self, task_dir: Path | None = None, overrides: list[str] | None = None, **direct: Any):
        """The task's shipped ``config.yaml`` as a RunConfig, with ``prompts``, ``db`` and ``eval.data`` taken from
        the prepared files (prepared first when ``task_dir`` is None); ``overrides`` (``key=value``) and keyword
        fields apply on top, as in :func:`opentao.config.load_config`."""
        from opentao.config import load_config

        files = self.files(self.prepare() if task_dir is None else Path(task_dir))
        fill = {"prompts": files["prompts"], "db": files["db"], "eval.data": files["test"]}
        return load_config(self.config_path, overrides, **{**fill, **direct})
