"""The ``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp, TGI,
SGLang, a hosted API, ``tao serve``) as a generator *or* as the model behind a judge.

* ``generate(requests)`` implements the :class:`~opentao.generate.backend.Generator` protocol: every request must
  succeed, a failure after retries is a :class:`EndpointError` (a ``TaoError``: the stage stops, finished
  parts are kept, re-running resumes).
* ``try_generate(requests)`` is what judges use: a request that still fails after its retries (429, 5xx,
  timeout, an empty reply) gives ``None`` — the judge abstains on that candidate — and is counted in
  :attr:`stats`; so does a request the server rejects (400/422, e.g. longer than its context), without
  retries. What no retry can fix raises at once: an unreachable endpoint, a wrong key (401/403), an unknown
  model (404); so does a run of ``max_consecutive_failures`` failed
  requests in a row (a circuit breaker: a broken endpoint must not silently turn a run into abstentions).
* ``next_token_logprobs(requests, top_k)`` is what the logprob judge uses: one token per request with
  ``logprobs: true, top_logprobs: top_k, max_tokens: 1``; the reply's ``(token, logprob)`` alternatives, ``[]``
  when the server sent none, ``None`` when the request failed — same retries and error policy as
  ``try_generate``.

Requests run ``concurrency`` at a time in threads. Retries are ours (the client's own are switched off, so
they can be counted): exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
Jitter", 2015), honouring a server's ``Retry-After`` up to ``max_backoff_s``. Token accounting sums the
``usage`` the server reports.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from opentao.errors import TaoError
from opentao.generate.backend import GenOutput, GenRequest

log = logging.getLogger(__name__)

__all__ = ["EndpointError", "EndpointStats", "OpenAIBackend"]


class EndpointError(TaoError):
    """An endpoint failed in a way that retrying does not fix (or retries ran out where failure is fatal)."""


@dataclass
class EndpointStats:
    """Counters of one backend (thread-safe updates through :meth:`OpenAIBackend._count`)."""

    requests: int = 0  # logical requests
    calls: int = 0  # HTTP attempts, retries included
    retries: int = 0
    errors: int = 0  # requests that failed for good (→ abstentions in a judge)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # summed request latency

    def as_dict(self) -> dict:
        return asdict(self)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible endpoint (see the module docstring for the error policy).

    ``model=None`` uses the first model the endpoint lists under ``/v1/models``. The key is read from the
    environment variable ``api_key_env`` (a local server needs none; a placeholder is sent then).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        max_consecutive_failures: int = 8,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise TaoError("the 'openai' backend needs the openai package: pip install openai") from exc
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise TaoError(f"openai backend: base_url must be an http(s) URL, got {base_url!r}")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0 or max_consecutive_failures < 1:
            raise TaoError("openai backend: need concurrency >= 1, max_retries >= 0, timeout_s > 0, "
                           "max_consecutive_failures >= 1")
        self._openai = openai
        self.base_url = base_url.rstrip("/")
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.top_p = top_p
        self.seed = seed
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) if api_key_env else None
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key or "no-key", timeout=self.timeout_s,
                                    max_retries=0)
        self._model = model
        self.stats = EndpointStats()
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._rng = random.Random(0)

    # --- helpers --------------------------------------------------------------------------------------
    def _count(self, **deltas) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _fatal(self, exc: Exception) -> EndpointError:
        o = self._openai
        where = f"endpoint {self.base_url}"
        if isinstance(exc, o.APIConnectionError) and not isinstance(exc, o.APITimeoutError):
            return EndpointError(f"{where} is unreachable ({type(exc).__name__}: {exc}); is the server running?")
        if isinstance(exc, (o.AuthenticationError, o.PermissionDeniedError)):
            return EndpointError(f"{where} refused the key (HTTP {exc.status_code}): set ${self.api_key_env}")
        if isinstance(exc, o.NotFoundError):
            return EndpointError(f"{where}: not found (HTTP 404) — wrong base_url (it usually ends in /v1) or "
                                 f"unknown model {self._model!r}")
        status = getattr(exc, "status_code", None)
        return EndpointError(f"{where} rejected the request (HTTP {status}): {str(exc)[:300]}")

    def _retryable(self, exc: Exception) -> bool:
        o = self._openai
        if isinstance(exc, (o.APITimeoutError, o.RateLimitError, o.InternalServerError)):
            return True
        if isinstance(exc, o.APIConnectionError):
            return True  # a blip; if it persists, retries run out and it is fatal (see _fatal)
        if isinstance(exc, o.APIStatusError):
            return exc.status_code in (408, 409, 425, 429) or exc.status_code >= 500
        return isinstance(exc, _EmptyReply)

    def _sleep_before_retry(self, attempt: int, exc: Exception) -> None:
        delay = self._rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
        after = _retry_after(exc)
        if after is not None:
            delay = max(delay, min(after, self.max_backoff_s))
        time.sleep(delay)

    @property
    def model(self) -> str:
        if self._model is None:
            try:
                models = self.client.models.list().data
            except self._openai.OpenAIError as exc:
                raise self._fatal(exc) from exc
            if not models:
                raise EndpointError(f"endpoint {self.base_url} lists no models: set 'model:'")
            self._model = models[0].id
        return self._model

    # --- one request ----------------------------------------------------------------------------------
    def _create(self, req: GenRequest, **extra):
        """One HTTP attempt; counts the call, its latency and the tokens the server reports."""
        kwargs = dict(model=self.model, messages=req.messages, temperature=req.temperature,
                      max_tokens=req.max_new_tokens)
        if req.stop:
            kwargs["stop"] = list(req.stop)
        if self.top_p is not None and req.temperature > 0:
            kwargs["top_p"] = self.top_p
        seed = self.seed if self.seed is not None else req.seed
        if seed is not None:
            kwargs["seed"] = seed
        kwargs.update(extra)
        t0 = time.perf_counter()
        try:
            resp = self.client.chat.completions.create(**kwargs)
        finally:
            self._count(calls=1, seconds=time.perf_counter() - t0)
        usage = getattr(resp, "usage", None)
        if usage is not None:
            self._count(prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0)
        if not resp.choices or resp.choices[0].message is None:
            raise _EmptyReply("the endpoint returned no choice")
        return resp

    def _call(self, req: GenRequest) -> GenOutput:
        resp = self._create(req)
        if resp.choices[0].message.content is None:
            raise _EmptyReply("the endpoint returned no message content")
        usage = getattr(resp, "usage", None)
        n = usage.completion_tokens if usage is not None and usage.completion_tokens is not None else 0
        return GenOutput(resp.choices[0].message.content, int(n))

    def _call_logprobs(self, req: GenRequest, top_k: int) -> list[tuple[str, float]]:
        resp = self._create(req, logprobs=True, top_logprobs=top_k, max_tokens=1)
        try:  # the reply is untrusted: an odd shape reads as "no logprobs", never as an exception
            content = getattr(resp.choices[0].logprobs, "content", None) or []
            if not content:
                return []  # the endpoint ignored logprobs: nothing to read (the judge counts and abstains)
            first = content[0]
            pairs = [(getattr(a, "token", None), getattr(a, "logprob", None)) for a in (first.top_logprobs or [])]
            if first.token not in {t for t, _ in pairs}:
                pairs.append((first.token, first.logprob))  # the chosen token, when it is not among the top k
        except (AttributeError, TypeError, IndexError):
            return []
        return pairs

    def complete(self, req: GenRequest) -> GenOutput:
        """One request with retries. Raises :class:`EndpointError` when it fails for good."""
        return self._attempts(lambda: self._call(req))

    def _attempts(self, call):
        """``call()`` (one HTTP attempt) with the retry and error policy of the module docstring."""
        self._count(requests=1)
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                out = call()
            except (self._openai.OpenAIError, _EmptyReply) as exc:
                last = exc
                if isinstance(exc, (self._openai.BadRequestError, self._openai.UnprocessableEntityError)):
                    break  # this request is bad (e.g. too long for the context): no retry, no fatal error
                if not self._retryable(exc):
                    self._count(errors=1)
                    raise self._fatal(exc) from exc
                if attempt < self.max_retries:
                    self._count(retries=1)
                    log.debug("endpoint %s: %s; retry %d", self.base_url, type(exc).__name__, attempt + 1)
                    self._sleep_before_retry(attempt, exc)
                continue
            with self._lock:
                self._consecutive_failures = 0
            return out
        self._count(errors=1)
        assert last is not None
        o = self._openai
        if isinstance(last, o.APIConnectionError) and not isinstance(last, o.APITimeoutError):
            raise self._fatal(last) from last
        with self._lock:
            self._consecutive_failures += 1
            tripped = self._consecutive_failures >= self.max_consecutive_failures
        what = f"{type(last).__name__}: {str(last)[:200]}"
        if tripped:
            raise EndpointError(f"endpoint {self.base_url} failed {self.max_consecutive_failures} requests in a "
                                f"row after {self.max_retries} retries each (last: {what})")
        raise _GaveUp(f"endpoint {self.base_url}: gave up on a request ({what})")

    # --- many requests --------------------------------------------------------------------------------
    def _map(self, requests: list[GenRequest], strict: bool, call=None) -> list:
        call = call or self._call

        def one(req: GenRequest):
            try:
                return self._attempts(lambda: call(req))
            except _GaveUp as exc:
                if strict:
                    raise EndpointError(str(exc)) from exc
                log.warning("%s", exc)
                return None

        if not requests:
            return []
        _ = self.model  # resolve a default model once, before the threads start
        if self.concurrency == 1 or len(requests) == 1:
            return [one(r) for r in requests]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)))
        try:
            futures = [pool.submit(one, r) for r in requests]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        """Generator protocol: every request must succeed (EndpointError otherwise)."""
        return self._map(requests, strict=True)  # type: ignore[return-value]

    def try_generate(self, requests: list[GenRequest]) -> list[GenOutput | None]:
        """For judges: None where a request failed for good (counted in ``stats.errors``)."""
        return self._map(requests, strict=False)

    def next_token_logprobs(self, requests: list[GenRequest], top_k: int) -> list[list[tuple[str, float]] | None]:
        """For the logprob judge: each request's first-token alternatives (module docstring); None = failed."""
        return self._map(requests, strict=False, call=lambda req: self._call_logprobs(req, top_k))

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self._model!r})"


class _EmptyReply(Exception):
    """A 200 response without content: retried like a server error."""


class _GaveUp(Exception):
    """Retries ran out on a transient error (a judge abstains; a generator raises EndpointError)."""
