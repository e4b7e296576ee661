"""What LLM judges share: the model behind them, candidates quoted as data, and parsing what the judge says.

**Backends.** A judge asks a *chat backend* — any object with ``try_generate(list[GenRequest]) ->
list[GenOutput | None]`` (None = that request failed; the judge abstains) — built by :func:`make_backend`. The
logprob judge needs ``next_token_logprobs(list[GenRequest], top_k) -> list[list[(token, logprob)] | None]``
instead (both built-in backends have both):

* ``"openai"`` — :class:`~opentao.generate.openai_api.OpenAIBackend` (``base_url``, ``model``, ``api_key_env``,
  ``concurrency``, ``timeout_s``, ``max_retries``, ...);
* ``"hf"`` — a local model through ``HFGenerator`` (``model``: ``bundled``, a folder or a hub id);
* ``"package.module:attr"`` — a plugin: a ready backend object, or a factory called with the other options.

**Quoting.** The candidate is untrusted text that may try to steer its grader (Greshake et al. 2023, "Not what
you've signed up for: indirect prompt injection"). It is shown between tags carrying a per-candidate nonce
(``<answer-3f9a0c1e>``) that the candidate cannot know, with every tag-like ``<answer``/``</answer`` inside
it defused, and the system prompt says the tagged text is data. This is the "spotlighting" defence (Hines et
al. 2024) in its delimiter form; it lowers, not removes, the risk — hence also the injection guard
(:mod:`opentao.score.guards`).

**Parsing.** The judge is asked for JSON (``{"score": 7}``; for a group ``{"scores": {"1": 7, "2": 3}}``).
A reply that is not valid JSON goes through a fallback parser (``Score: 7``, ``7/10``, ``**8**``, one score
per line ``2: 6``). A reply nothing can be read from, or a score outside the scale, is an abstention (None)
— never a crash and never a default score.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from opentao.errors import TaoError
from opentao.generate.backend import GenOutput, GenRequest
from opentao.records import Message
from opentao.score.base import import_object

__all__ = ["LocalBackend", "defuse_special_tokens", "make_backend", "nonce", "parse_group_scores", "parse_score",
           "quote", "render_task", "special_tokens_of"]

_NUM = r"[-+]?\d+(?:\.\d+)?"
_SCORE_KEYS = ("score", "rating", "grade", "points", "value")


# --- backends -------------------------------------------------------------------------------------------
class LocalBackend:
    """A local HF causal LM as a judge backend (loaded on first use; greedy unless a temperature is asked)."""

    def __init__(self, model: str = "bundled", batch_size: int = 8, dtype: str = "auto", device: str = "auto"):
        self.model_name, self.batch_size, self.dtype, self.device = model, batch_size, dtype, device
        self._gen = None
        self.requests = 0
        self.completion_tokens = 0

    def _generator(self):
        if self._gen is None:
            from opentao.generate.hf import HFGenerator
            from opentao.models import load_model

            model, tok = load_model(self.model_name, dtype=self.dtype, device=self.device)
            self._gen = HFGenerator(model, tok, batch_size=self.batch_size)
        return self._gen

    def try_generate(self, requests: list[GenRequest]) -> list[GenOutput | None]:
        outs = self._generator().generate(requests)
        self.requests += len(requests)
        self.completion_tokens += sum(o.num_tokens for o in outs)
        return list(outs)

    def next_token_logprobs(self, requests: list[GenRequest], top_k: int) -> list[list[tuple[str, float]] | None]:
        """The next-token distribution after each prompt straight from the model: one batched forward pass,
        log-softmax of the last position, the ``top_k`` most likely tokens (no generation)."""
        outs = self._generator().next_token_logprobs(requests, top_k) if requests else []
        self.requests += len(requests)
        return list(outs)

    def counters(self) -> dict[str, int]:
        return {"requests": self.requests, "completion_tokens": self.completion_tokens}

    def special_tokens(self) -> list[str]:
        """The special tokens of this model's tokenizer: content quoted for it must not contain them."""
        return special_tokens_of(self._generator().tok)


_OPENAI_OPTIONS = ("base_url", "model", "api_key_env", "concurrency", "timeout_s", "max_retries", "backoff_s",
                   "max_backoff_s", "max_consecutive_failures", "seed")
_HF_OPTIONS = ("model", "batch_size", "dtype", "device")


def make_backend(backend: Any = "openai", *, method: str = "try_generate", **options: Any) -> Any:
    """Build a judge's chat backend from config options (module docstring); TaoError on bad options or when
    the backend lacks ``method`` (the one the judge calls)."""
    options = {k: v for k, v in options.items() if v is not None}
    if not isinstance(backend, str):
        if not callable(getattr(backend, method, None)):
            raise TaoError(f"judge backend {backend!r} has no {method}(requests, ...) method")
        return backend
    if backend == "openai":
        bad = sorted(set(options) - set(_OPENAI_OPTIONS))
        if bad or "base_url" not in options:
            raise TaoError(f"judge backend 'openai' needs 'base_url' and takes {', '.join(_OPENAI_OPTIONS)}"
                           + (f"; unknown: {', '.join(bad)}" if bad else ""))
        from opentao.generate.openai_api import OpenAIBackend

        return OpenAIBackend(**options)
    if backend == "hf":
        bad = sorted(set(options) - set(_HF_OPTIONS))
        if bad:
            raise TaoError(f"judge backend 'hf' takes {', '.join(_HF_OPTIONS)}; unknown: {', '.join(bad)}")
        from opentao.models import resolve_model

        resolve_model(options.get("model", "bundled"))  # fail early on a bad model name
        return LocalBackend(**options)
    if ":" in backend:
        obj = import_object(backend)
        built = obj(**options) if callable(obj) and not hasattr(obj, method) else obj
        return make_backend(built, method=method)
    raise TaoError(f"unknown judge backend {backend!r}: use openai, hf or 'package.module:attr'")


def backend_counters(backend: Any) -> dict[str, Any]:
    """Endpoint counters of a backend, whatever its kind (empty when it keeps none)."""
    stats = getattr(backend, "stats", None)
    if stats is not None and hasattr(stats, "as_dict"):
        return stats.as_dict()
    counters = getattr(backend, "counters", None)
    return dict(counters()) if callable(counters) else {}


# --- quoting --------------------------------------------------------------------------------------------
def nonce(*parts: str) -> str:
    """A tag suffix the candidate cannot predict (hash of ids and a salt), stable across a resumed run."""
    return hashlib.sha256("\x00".join(("opentao-judge", *parts)).encode()).hexdigest()[:10]


_TAG_LIKE = re.compile(r"<\s*(/?)\s*(answer|task|candidate)", re.IGNORECASE)


_SPECIAL_LIKE = re.compile(r"<\|[^<>|\s]{0,64}\|>|</?s>|\[/?INST\]|<</?SYS>>")


def _defused(token: str) -> str:
    return "‹" + token[1:] if token.startswith("<") else token[:1] + "\u2060" + token[1:]


def special_tokens_of(tokenizer: Any) -> list[str]:
    """Every special token string of an HF tokenizer (``all_special_tokens`` and added special tokens)."""
    found = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(str(added.content))
    return sorted((t for t in found if t), key=len, reverse=True)


def defuse_special_tokens(text: str, special: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with control-token look-alikes broken so a chat template's tokenizer reads them as plain text.

    Each of ``special`` (a tokenizer's own special tokens, :func:`special_tokens_of`) and every generic form
    (``<|...|>``, ``<s>``, ``</s>``, ``[INST]``, ``<<SYS>>``) has its first character changed (``<`` → ``‹``,
    else a word joiner inserted after it): content can no longer close a turn or open a system turn."""
    for token in special:
        if token in text:
            text = text.replace(token, _defused(token))
    return _SPECIAL_LIKE.sub(lambda m: _defused(m.group(0)), text)


def quote(text: str, tag: str, max_chars: int, attrs: str = "", special: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` between ``<tag attrs>`` and ``</tag>`` with tag-like sequences and special tokens
    (:func:`defuse_special_tokens`) inside defused and long text cut."""
    body = text if len(text) <= max_chars else text[:max_chars] + f"\n[... {len(text) - max_chars} characters cut]"
    body = _TAG_LIKE.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", defuse_special_tokens(body, special))
    open_tag = f"<{tag}{(' ' + attrs) if attrs else ''}>"
    return f"{open_tag}\n{body}\n</{tag}>"


def render_task(messages: list[Message], max_chars: int = 4000) -> str:
    """The prompt a candidate answered, as plain text for the judge (system turns included, labelled)."""
    if len(messages) == 1:
        return messages[0]["content"][-max_chars:]
    text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
    return text[-max_chars:]


# --- parsing --------------------------------------------------------------------------------------------
def _json_candidates(text: str) -> list[Any]:
    """Every JSON value that can be read from ``text``: the whole text, fenced blocks, then balanced ``{...}``."""
    found: list[Any] = []
    stripped = text.strip()
    for chunk in [stripped, *re.findall(r"```(?:json)?\s*(.*?)```", text, re.S | re.I)]:
        try:
            found.append(json.loads(chunk))
        except (json.JSONDecodeError, ValueError):
            pass
    depth, start = 0, -1
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                try:
                    found.append(json.loads(text[start : i + 1]))
                except (json.JSONDecodeError, ValueError):
                    pass
    return found


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and re.fullmatch(rf"\s*{_NUM}\s*(?:/\s*\d+)?\s*", v):
        return float(re.match(rf"\s*({_NUM})", v).group(1))  # type: ignore[union-attr]
    return None


def _on_scale(v: float | None, lo: float, hi: float) -> float | None:
    """Map a raw score on [lo, hi] to [0, 1]; outside the scale → None."""
    if v is None or not (lo <= v <= hi):
        return None
    return (v - lo) / (hi - lo)


def _score_of(obj: Any) -> float | None:
    if isinstance(obj, dict):
        for key in obj:
            if str(key).lower() in _SCORE_KEYS:
                return _number(obj[key])
    return _number(obj) if not isinstance(obj, (dict, list)) else None


_FALLBACK_PATTERNS = (
    re.compile(rf"(?:score|rating|grade)\s*(?:is|of|=|:)?\s*[*\"'\[]*\s*({_NUM})\s*(?:/|out of)\s*({_NUM})", re.I),
    re.compile(rf"(?:score|rating|grade)\s*(?:is|of|=|:)?\s*[*\"'\[]*\s*({_NUM})", re.I),
    re.compile(rf"\b({_NUM})\s*(?:/|out of)\s*({_NUM})", re.I),
    re.compile(rf"^\W*({_NUM})\W*$"),
)


def parse_score(text: str, lo: float = 1, hi: float = 10) -> float | None:
    """The judge's score for one candidate, mapped to [0, 1]; None when none can be read or it is off-scale.

    JSON first (the last object with a ``score``-like key wins: a verdict follows its reasoning); then the
    fallback patterns, in order: ``score: 7/10``, ``score: 7``, ``7/10``, a reply that is only a number. A
    ``x/N`` form is read as the fraction x/N (so ``4/5`` on a 1–10 scale is 0.8).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    for obj in reversed(_json_candidates(text)):
        v = _score_of(obj)
        if v is not None:
            return _on_scale(v, lo, hi)
    for pat in _FALLBACK_PATTERNS:
        matches = pat.findall(text)
        if not matches:
            continue
        m = matches[-1]
        if isinstance(m, tuple) and len(m) == 2:
            x, den = float(m[0]), float(m[1])
            return x / den if den > 0 and 0 <= x <= den else None
        return _on_scale(float(m if isinstance(m, str) else m[0]), lo, hi)
    return None


def _group_from_json(obj: Any, n: int) -> dict[int, float | None] | None:
    if isinstance(obj, dict):
        for key in ("scores", "ratings", "grades", "results"):
            if key in obj:
                return _group_from_json(obj[key], n)
        keyed: dict[int, float | None] = {}
        for k, v in obj.items():
            m = re.fullmatch(r"\s*(?:candidate|answer|response)?\s*#?\s*(\d+)\s*", str(k), re.I)
            if m:
                keyed[int(m.group(1))] = _number(v) if not isinstance(v, dict) else _score_of(v)
        return keyed or None
    if isinstance(obj, list):
        if all(isinstance(x, dict) for x in obj) and obj:
            keyed = {}
            for x in obj:
                ident = next((x[k] for k in ("id", "candidate", "answer", "index") if k in x), None)
                if ident is not None and _number(ident) is not None:
                    keyed[int(_number(ident))] = _score_of(x)  # type: ignore[arg-type]
            return keyed or None
        if len(obj) == n:
            return {i + 1: _number(v) for i, v in enumerate(obj)}
    return None


_LINE = re.compile(rf"(?:candidate|answer|response)?\s*#?\s*\[?(\d+)\]?\s*[:=)\-–]+\s*(?:score\s*[:=]?\s*)?\**({_NUM})",
                   re.I)


def parse_group_scores(text: str, n: int, lo: float = 1, hi: float = 10) -> list[float | None]:
    """Scores for candidates labelled 1..n, mapped to [0, 1]; a missing or off-scale one is None.

    JSON first: ``{"scores": {"1": 7, ...}}``, ``{"scores": [7, 3, ...]}`` (exactly n values),
    ``[{"id": 1, "score": 7}, ...]`` or ``{"1": 7, ...}``; else one ``<label>: <score>`` per line.
    """
    out: list[float | None] = [None] * n
    if not isinstance(text, str) or not text.strip():
        return out
    keyed: dict[int, float | None] | None = None
    for obj in reversed(_json_candidates(text)):
        keyed = _group_from_json(obj, n)
        if keyed:
            break
    if not keyed:
        keyed = {int(label): float(score) for label, score in _LINE.findall(text)}
    for label, value in keyed.items():
        if 1 <= label <= n:
            out[label - 1] = _on_scale(value, lo, hi)
    return out
