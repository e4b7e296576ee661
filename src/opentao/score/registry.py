"""Config → scorers, and scoring one group with all of them.

A scorer spec is a dict from the YAML config, e.g. ``{"type": "sql_exec", "db": "shop.sqlite", "weight": 1}``.
``type`` is a built-in name (:data:`BUILTIN_SCORERS`) or a plugin ``"package.module:attr"`` (a class or
factory called with the remaining keys, or a ready Scorer object when no other keys are given). ``weight``
(default 1.0) and ``name`` (default: the scorer's own) are taken out before construction.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.base import FitsBatch, Scorer, import_object
from opentao.score.certainty import entropy_scorer, self_certainty_scorer
from opentao.score.combine import NORMALIZATIONS, combine
from opentao.score.guards import InjectionGuard, LengthPenalty, RelevanceFloor, RepetitionPenalty
from opentao.score.judge import GroupJudgeScorer, JudgeScorer, LogprobJudgeScorer
from opentao.score.reward_model import RewardModelScorer
from opentao.score.rules import CallableScorer, JsonScorer, RegexScorer
from opentao.score.sql import SqlExecScorer
from opentao.score.vote import MajorityVoteScorer, soft_vote

__all__ = ["BUILTIN_SCORERS", "RESERVED_NAMES", "build_scorer", "build_scorers", "own_normalizations",
           "fit_scorers", "score_group_all"]

BUILTIN_SCORERS: dict[str, Callable[..., Any]] = {
    "sql_exec": SqlExecScorer,
    "majority_vote": MajorityVoteScorer,
    "regex": RegexScorer,
    "callable": CallableScorer,
    "json": JsonScorer,
    "judge": JudgeScorer,
    "judge_group": GroupJudgeScorer,
    "judge_logprob": LogprobJudgeScorer,
    "reward_model": RewardModelScorer,
    "length_penalty": LengthPenalty,
    "repetition_penalty": RepetitionPenalty,
    "relevance": RelevanceFloor,
    "injection_guard": InjectionGuard,
    "soft_vote": soft_vote,
    "self_certainty": self_certainty_scorer,
    "entropy": entropy_scorer,
}
RESERVED_NAMES = {"combined"}  # the score stage stores the combined reward under this name


def _is_scorer(obj: Any) -> bool:
    return (
        not inspect.isclass(obj)
        and isinstance(obj, Scorer)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "score_group", None))
    )


def _construct(kind: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as e:
            accepted = [
                p.name for p in sig.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
            ]
            bad = [k for k in kwargs if k not in sig.parameters]
            detail = f"unknown argument(s) {', '.join(map(repr, bad))}" if bad else str(e)
            raise TaoError(
                f"scorer {kind!r}: {detail}; accepted arguments: {', '.join(accepted) or '(none)'}"
            ) from e
    try:
        return factory(**kwargs)
    except TaoError as e:
        msg = str(e)
        raise TaoError(msg if kind in msg else f"scorer {kind!r}: {msg}") from e
    except TypeError as e:
        raise TaoError(f"scorer {kind!r}: bad arguments {sorted(kwargs)}: {e}") from e


def build_scorer(spec: dict[str, Any]) -> tuple[Scorer, float]:
    """One spec → ``(scorer, weight)``. Raises TaoError on any problem with the spec."""
    if not isinstance(spec, dict):
        raise TaoError(f"a scorer spec must be a mapping with a 'type', got {spec!r}")
    kwargs = dict(spec)
    kind = kwargs.pop("type", None)
    if not isinstance(kind, str) or not kind:
        raise TaoError(f"scorer spec {spec!r} has no 'type'; known types: {', '.join(BUILTIN_SCORERS)}")
    weight = kwargs.pop("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(float(weight)):
        raise TaoError(f"scorer {kind!r}: 'weight' must be a finite number, got {weight!r}")
    normalize = kwargs.pop("normalize", None)
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise TaoError(f"scorer {kind!r}: unknown normalize {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
    name = kwargs.pop("name", None)
    if name is not None and (not isinstance(name, str) or not name):
        raise TaoError(f"scorer {kind!r}: 'name' must be a non-empty string, got {name!r}")

    if kind in BUILTIN_SCORERS:
        scorer = _construct(kind, BUILTIN_SCORERS[kind], kwargs)
    elif ":" in kind:
        obj = import_object(kind)
        if _is_scorer(obj):
            if kwargs:
                raise TaoError(f"scorer {kind!r} is a ready Scorer object: it takes no arguments ({sorted(kwargs)})")
            scorer = obj
        elif callable(obj):
            scorer = _construct(kind, obj, kwargs)
        else:
            raise TaoError(f"scorer {kind!r} is neither a Scorer nor a class or factory that builds one")
        if not _is_scorer(scorer):
            raise TaoError(
                f"scorer {kind!r} built {type(scorer).__name__!r}, which is not a Scorer: it needs a 'name' string "
                "and a 'score_group(prompt, candidates) -> list[float | None]' method"
            )
    else:
        raise TaoError(
            f"unknown scorer type {kind!r}; known types: {', '.join(BUILTIN_SCORERS)}, "
            "or a plugin 'package.module:attr'"
        )
    if name is not None:
        try:
            scorer.name = name
        except AttributeError as e:
            raise TaoError(f"scorer {kind!r}: cannot set its name to {name!r}: {e}") from e
    return scorer, float(weight)


def build_scorers(specs: list[dict[str, Any]]) -> list[tuple[Scorer, float]]:
    """Build every spec; TaoError on a bad spec or when two scorers share a name."""
    if not isinstance(specs, (list, tuple)):
        raise TaoError(f"score.scorers must be a list of scorer specs, got {type(specs).__name__}")
    built = [build_scorer(spec) for spec in specs]
    seen: dict[str, int] = {}
    for i, (scorer, _) in enumerate(built):
        if scorer.name in RESERVED_NAMES:
            raise TaoError(f"scorer #{i + 1}: the name {scorer.name!r} is reserved; give it another 'name:'")
        if scorer.name in seen:
            raise TaoError(
                f"scorers #{seen[scorer.name] + 1} and #{i + 1} are both named {scorer.name!r}; "
                "give one of them a distinct 'name:'"
            )
        seen[scorer.name] = i
    return built


def own_normalizations(specs: list[dict[str, Any]], built: Sequence[tuple[Scorer, float]]) -> dict[str, str]:
    """Scorer name → the ``normalize:`` its spec sets (specs and built scorers in the same order)."""
    return {scorer.name: spec["normalize"] for spec, (scorer, _) in zip(specs, built)
            if isinstance(spec, dict) and spec.get("normalize") is not None}


def _validate(name: str, values: Any, n: int) -> list[float | None]:
    if not isinstance(values, (list, tuple)):
        raise TaoError(f"scorer {name!r} returned {type(values).__name__}, not a list of {n} scores")
    if len(values) != n:
        raise TaoError(f"scorer {name!r} returned {len(values)} scores for {n} candidates")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
        elif isinstance(v, numbers.Real) and math.isfinite(float(v)):
            out.append(float(v))
        else:
            raise TaoError(f"scorer {name!r} returned {v!r} for candidate #{i + 1}: expected a finite number or None")
    return out


def fit_scorers(scorers_with_weights: Sequence[tuple[Scorer, float]],
                groups: list[tuple[Prompt, list[Candidate]]]) -> None:
    """Call ``fit`` (:class:`~opentao.score.base.FitsBatch`) on every scorer that has one, with all the groups."""
    for scorer, _ in scorers_with_weights:
        if isinstance(scorer, FitsBatch):
            try:
                scorer.fit(groups)
            except TaoError:
                raise
            except Exception as e:
                raise TaoError(f"scorer {scorer.name!r} failed to fit: {type(e).__name__}: {e}") from e


def score_group_all(
    scorers_with_weights: Sequence[tuple[Scorer, float]],
    prompt: Prompt,
    candidates: list[Candidate],
    normalize: str = "none",
    per_scorer_normalize: dict[str, str] | None = None,
) -> tuple[dict[str, list[float | None]], list[float | None]]:
    """Run every scorer on one group: ``({scorer name: scores}, combined scores)``; stored scores stay raw."""
    if normalize not in NORMALIZATIONS:
        raise TaoError(f"unknown score normalization {normalize!r}; use one of {', '.join(NORMALIZATIONS)}")
    per_scorer: dict[str, list[float | None]] = {}
    weights: dict[str, float] = {}
    for scorer, weight in scorers_with_weights:
        try:
            values = scorer.score_group(prompt, candidates)
        except TaoError:
            raise
        except Exception as e:
            raise TaoError(
                f"scorer {scorer.name!r} failed on prompt {prompt.prompt_id!r}: {type(e).__name__}: {e}"
            ) from e
        per_scorer[scorer.name] = _validate(scorer.name, values, len(candidates))
        weights[scorer.name] = weight
    if not per_scorer:
        return per_scorer, [None] * len(candidates)
    return per_scorer, combine(per_scorer, weights, normalize, per_scorer_normalize)
