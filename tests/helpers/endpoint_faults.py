"""TEST-ONLY fault injection around the real gateway (``opentao.serve.create_app`` + ``serve_in_thread``).

``serve_model(...)`` runs the real OpenAI-compatible app on loopback, wrapped in :class:`FaultMiddleware`, a
small ASGI middleware that can break ``POST /v1/chat/completions`` on purpose (knobs on ``endpoint.faults``,
mutable while the server runs):

* ``fail_first`` / ``fail_status``: the first N chat requests get HTTP ``fail_status`` (429, 500, ...), with
  ``Retry-After: 0``;
* ``fail_every``: then every chat request fails (an endpoint that is up but broken);
* ``delay_s``: each chat request waits this long before it is answered (slow server, timeouts);
* ``garbage``: the text of every answer is replaced by this string (a judge that answers nonsense);
* ``reply``: a callable ``messages -> str`` that replaces the model — :class:`ReplyGenerator`, a stub
  generator behind the real app (a deterministic judge). ``logprobs`` (``messages -> [(token, logprob)]``)
  gives it first-token log-probabilities, for the logprob judge.

Every chat request is counted and its messages kept (``endpoint.state``), failed ones included.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.generate.backend import GenOutput, GenRequest, TokenLogprob
from opentao.serve.app import ServeSettings, create_app
from opentao.testing import serve_in_thread

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Faults:
    fail_first: int = 0
    fail_status: int = 429
    fail_every: bool = False
    delay_s: float = 0.0
    garbage: str | None = None
    reply: Callable[[list[dict]], str] | None = None
    logprobs: Callable[[list[dict]], list[tuple[str, float]]] | None = None


@dataclass
class ServerState:
    faults: Faults = field(default_factory=Faults)
    requests: int = 0  # chat requests received (failed ones included)
    log: list[dict] = field(default_factory=list)  # the messages of every chat request, in arrival order
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReplyGenerator:
    """A ``Generator`` that answers ``faults.reply(messages)`` (read at call time, so the knob stays mutable)."""

    def __init__(self, state: ServerState):
        self.state = state

    @property
    def supports_logprobs(self) -> bool:
        return self.state.faults.logprobs is not None

    def _logprobs(self, req: GenRequest) -> tuple[TokenLogprob, ...] | None:
        if req.top_logprobs is None or self.state.faults.logprobs is None:
            return None
        top = tuple(TokenLogprob(t, tuple(t.encode()), lp) for t, lp in self.state.faults.logprobs(req.messages))
        return (TokenLogprob(top[0].token, top[0].token_bytes, top[0].logprob, top[: req.top_logprobs]),) if top else ()

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        reply = self.state.faults.reply
        if reply is None:
            raise RuntimeError("no model loaded and no reply knob set")
        texts = [reply(r.messages) for r in requests]
        return [GenOutput(t, max(1, len(t.split())), self._logprobs(r)) for t, r in zip(texts, requests)]


class FaultMiddleware:
    """ASGI middleware: counts, logs, delays, fails or garbles chat completions (module docstring)."""

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != CHAT_PATH:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            messages = json.loads(body).get("messages")
        except (ValueError, AttributeError):
            messages = None
        f, state = self.state.faults, self.state
        with state.lock:
            state.requests += 1
            n = state.requests
            state.log.append({"n": n, "messages": messages})
        if f.delay_s:
            await asyncio.sleep(f.delay_s)
        if f.fail_every or n <= f.fail_first:
            return await _send_json(send, f.fail_status, {"error": {"message": f"injected failure #{n}",
                                                                     "type": "test"}}, {"retry-after": "0"})
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if f.garbage is None:
            return await self.app(scope, replay, send)
        await self.app(scope, replay, _Garble(send, f.garbage))


class _Garble:
    """A ``send`` that buffers a JSON chat completion and replaces every choice's text."""

    def __init__(self, send, text: str):
        self.send, self.text = send, text
        self.start: dict[str, Any] | None = None
        self.body = b""

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body":
            return await self.send(message)
        self.body += message.get("body", b"")
        if message.get("more_body", False):
            return
        assert self.start is not None
        headers = dict(self.start.get("headers", []))
        body = self.body
        if self.start["status"] == 200 and headers.get(b"content-type", b"").startswith(b"application/json"):
            data = json.loads(body)
            for choice in data.get("choices", []):
                choice["message"]["content"] = self.text
            body = json.dumps(data).encode()
        headers[b"content-length"] = str(len(body)).encode()
        await self.send({**self.start, "headers": list(headers.items())})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send, status: int, payload: dict, headers: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@dataclass
class Endpoint:
    base_url: str  # ends in /v1
    state: ServerState

    @property
    def faults(self) -> Faults:
        return self.state.faults


@contextmanager
def serve_model(model_dir: str | Path | None, *, model_name: str | None = None, dtype: str = "fp32",
                batch_size: int = 8, **knobs: Any) -> Iterator[Endpoint]:
    """The real gateway (``model_dir``, or ``reply=`` as the model) on loopback behind :class:`FaultMiddleware`.

    The served model id is ``model_name`` (default ``tiny`` for a model folder, ``stub`` for a reply callable).
    Fault knobs may be passed as keyword options (``fail_first=2``) or changed later on ``endpoint.faults``.
    """
    unknown = set(knobs) - set(Faults.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown fault knobs: {sorted(unknown)}")
    state = ServerState(faults=Faults(**knobs))
    if (model_dir is None) == (state.faults.reply is None):
        raise ValueError("give a model folder or a reply callable (exactly one)")
    model_name = model_name or ("tiny" if model_dir is not None else "stub")
    settings = ServeSettings(served_name=model_name, max_batch=batch_size, max_wait_ms=20, dtype=dtype)
    app = create_app(str(model_dir) if model_dir is not None else ReplyGenerator(state), settings=settings)
    with serve_in_thread(FaultMiddleware(app, state)) as url:
        yield Endpoint(url + "/v1", state)
