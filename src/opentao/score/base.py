"""The Scorer extension point.

A Scorer rates a whole *group* of candidates for one prompt at once (so it can compare them: majority vote,
group judges) and returns one score per candidate, or None where it abstains. Users plug in their own with
``"package.module:attr"`` in the config. A scorer that needs batch-level statistics also implements
:class:`FitsBatch`; the score stage calls its ``fit`` with all of the round's groups first.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt


@runtime_checkable
class Scorer(Protocol):
    """Rates a group of candidates for one prompt: ``len(result) == len(candidates)``; None = abstain."""

    name: str

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]: ...


@runtime_checkable
class FitsBatch(Protocol):
    """Optional: a Scorer that also has ``fit`` sees every group of the round once, before any group is scored, to
    learn a batch-level statistic (e.g. the answer prior of a calibrated vote). ``fit`` must be deterministic in
    its input, so a resumed stage that refits on the same groups scores the same."""

    def fit(self, groups: list[tuple[Prompt, list[Candidate]]]) -> None: ...


def import_object(spec: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted). Raises TaoError with a clear message."""
    if ":" not in spec:
        raise TaoError(f"expected 'package.module:attr', got {spec!r}")
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaoError(f"cannot import module {module_name!r} (from {spec!r}): {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaoError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    return obj
