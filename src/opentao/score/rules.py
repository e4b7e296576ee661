"""Small rule-based scorers: a regular expression, a user function, a JSON check.

* :class:`RegexScorer` — ``on_match`` / ``on_miss`` depending on whether a pattern is found in a field;
* :class:`CallableScorer` — any ``"package.module:function"``; user errors make candidates abstain and are
  counted in ``errors`` (they never crash the score stage);
* :class:`JsonScorer` — 1.0 when the field parses as JSON.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.base import import_object

__all__ = ["CallableScorer", "JsonScorer", "RegexScorer"]

log = logging.getLogger(__name__)

_FIELDS = ("response", "text", "answer")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def _check_field(scorer: str, field: str) -> str:
    if field not in _FIELDS:
        raise TaoError(f"{scorer}: unknown field {field!r}; use one of {', '.join(_FIELDS)}")
    return field


def _finite(scorer: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise TaoError(f"{scorer}: {what} must be a finite number, got {value!r}")
    return float(value)


class RegexScorer:
    """``on_match`` when ``pattern`` is found (``re.search``) in the candidate's ``field``, else ``on_miss``.

    ``flags`` is a string of letters: ``i`` (ignore case), ``m`` (multiline), ``s`` (dot matches newline),
    ``x`` (verbose), ``a`` (ASCII).
    """

    def __init__(
        self,
        pattern: str,
        name: str = "regex",
        flags: str = "",
        on_match: float = 1.0,
        on_miss: float = 0.0,
        field: str = "response",
    ) -> None:
        if not isinstance(pattern, str):
            raise TaoError(f"regex scorer: 'pattern' must be a string, got {pattern!r}")
        bits = 0
        for ch in flags or "":
            if ch.lower() not in _FLAGS:
                raise TaoError(f"regex scorer: unknown flag {ch!r} in {flags!r}; use letters from 'imsxa'")
            bits |= _FLAGS[ch.lower()]
        try:
            self.regex = re.compile(pattern, bits)
        except re.error as e:
            raise TaoError(f"regex scorer: invalid pattern {pattern!r}: {e}") from e
        self.name = name
        self.field = _check_field("regex scorer", field)
        self.on_match = _finite("regex scorer", "on_match", on_match)
        self.on_miss = _finite("regex scorer", "on_miss", on_miss)

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        return [
            self.on_match if self.regex.search(getattr(c, self.field) or "") else self.on_miss for c in candidates
        ]

    def __repr__(self) -> str:
        return f"RegexScorer({self.regex.pattern!r}, name={self.name!r})"


class JsonScorer:
    """1.0 when the candidate's ``field`` (stripped, with an optional ``` fence removed) parses as JSON."""

    _FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)

    def __init__(self, name: str = "json", field: str = "response") -> None:
        self.name = name
        self.field = _check_field("json scorer", field)

    def _ok(self, text: str) -> bool:
        text = (text or "").strip()
        m = self._FENCE.match(text)
        if m:
            text = m.group(1).strip()
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        return [1.0 if self._ok(getattr(c, self.field)) else 0.0 for c in candidates]


class CallableScorer:
    """A user function as a scorer, loaded from ``"package.module:function"``.

    * Per candidate (default): ``fn(prompt, candidate) -> float | bool | None``.
    * Per group, when the function has an attribute ``group = True``: ``fn(prompt, candidates) -> list``.
    * An object (or a class, instantiated without arguments) with a ``score_group`` method is called per group.

    A raised exception, a non-numeric or non-finite value, or (per group) a list of the wrong length makes the
    affected candidates abstain (None) and adds one to ``errors``; ``last_error`` keeps the latest message.
    ``None`` returned by the function is an ordinary abstention, not an error. Booleans map to 1.0 / 0.0.
    """

    def __init__(self, path: str, name: str | None = None) -> None:
        if not isinstance(path, str):
            raise TaoError(f"callable scorer: 'path' must be 'package.module:function', got {path!r}")
        obj: Any = import_object(path)
        self.path = path
        self.group = False
        if inspect.isclass(obj) and callable(getattr(obj, "score_group", None)):
            try:
                obj = obj()
            except Exception as e:  # noqa: BLE001 - user code
                raise TaoError(f"callable scorer: cannot instantiate {path!r}: {e}") from e
        if callable(getattr(obj, "score_group", None)):
            fn: Callable[..., Any] = obj.score_group
            self.group = True
        elif callable(obj):
            fn = obj
            self.group = bool(getattr(obj, "group", False))
        else:
            raise TaoError(f"callable scorer: {path!r} is not callable")
        self.fn = fn
        self.name = name or path.rpartition(":")[2].rpartition(".")[2]
        self.errors = 0
        self.last_error = ""

    def _error(self, msg: str) -> None:
        self.errors += 1
        self.last_error = msg
        if self.errors <= 3:
            log.warning("scorer %s: %s (the candidate abstains)", self.name, msg)

    def _value(self, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            return float(value)
        self._error(f"returned {value!r}, not a finite number, bool or None")
        return None

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        if self.group:
            try:
                out = self.fn(prompt, candidates)
            except Exception as e:  # noqa: BLE001 - user code must not crash the stage
                self._error(f"raised {type(e).__name__}: {e}")
                return [None] * len(candidates)
            try:
                values = list(out)
            except TypeError:
                values = None
            if values is None or len(values) != len(candidates):
                self._error(f"returned {type(out).__name__} instead of a list of {len(candidates)} scores")
                return [None] * len(candidates)
            return [self._value(v) for v in values]
        scores: list[float | None] = []
        for c in candidates:
            try:
                scores.append(self._value(self.fn(prompt, c)))
            except Exception as e:  # noqa: BLE001
                self._error(f"raised {type(e).__name__}: {e}")
                scores.append(None)
        return scores

    def __repr__(self) -> str:
        return f"CallableScorer({self.path!r}, name={self.name!r})"
