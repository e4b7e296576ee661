"""opentao: Test-time Adaptive Optimization (TAO) — tune an LLM from unlabeled prompts only.

The public surface is the names in ``__all__``: the run's config (:class:`RunConfig`, :func:`load_config`), the
round loop (:func:`run_rounds`), the records every table holds (:class:`Prompt`, :class:`Candidate`,
:class:`Score`, :class:`TrainExample`), the two extension protocols (:class:`Scorer`; :class:`Generator` with
its :class:`GenRequest` and :class:`GenOutput`), the run directory (:class:`RunStore`), the tasks
(:class:`Task`, :func:`get_task`) and the one user error (:class:`TaoError`). Each is imported on first use (a
module ``__getattr__``), so ``import opentao`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": "opentao.config",
    "load_config": "opentao.config",
    "run_rounds": "opentao.pipeline",
    "Prompt": "opentao.records",
    "Candidate": "opentao.records",
    "Score": "opentao.records",
    "TrainExample": "opentao.records",
    "Scorer": "opentao.score.base",
    "TaoError": "opentao.errors",
    "RunStore": "opentao.store",
    "Generator": "opentao.generate.backend",
    "GenRequest": "opentao.generate.backend",
    "GenOutput": "opentao.generate.backend",
    "Task": "opentao.tasks",
    "get_task": "opentao.tasks",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from opentao.config import RunConfig, load_config
    from opentao.errors import TaoError
    from opentao.generate.backend import Generator, GenOutput, GenRequest
    from opentao.pipeline import run_rounds
    from opentao.records import Candidate, Prompt, Score, TrainExample
    from opentao.score.base import Scorer
    from opentao.store import RunStore
    from opentao.tasks import Task, get_task


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opentao' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # cached: the next access does not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
