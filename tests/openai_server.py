"""TEST-ONLY minimal OpenAI-compatible server: ``/v1/chat/completions`` and ``/v1/models`` over ``HFGenerator``.

It exists so the ``openai`` backend and the judges are tested over real HTTP with the official ``openai``
client. It is not the production gateway (``tao serve``, issue 5) and will be swapped for it. It binds
127.0.0.1 only. Concurrent requests are micro-batched (up to ``batch_size`` within ``batch_wait_s``) into one
``HFGenerator.generate`` call, so a judge's parallel calls share a forward pass.

Fault injection (mutable at run time through ``server.faults``):

* ``fail_first`` / ``fail_status``: the first N chat requests get HTTP ``fail_status`` (429, 500, ...);
* ``fail_every``: then every request fails (an endpoint that is up but broken);
* ``delay_s``: each chat request sleeps this long before answering (slow server, timeouts);
* ``garbage``: the reply text is replaced by this string (a judge that answers nonsense);
* ``reply``: a callable ``messages -> str`` that replaces the model (a deterministic judge).
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from opentao.generate.hf import GenOutput, GenRequest, HFGenerator
from opentao.models import load_model


@dataclass
class Faults:
    fail_first: int = 0
    fail_status: int = 429
    fail_every: bool = False
    delay_s: float = 0.0
    garbage: str | None = None
    reply: Callable[[list[dict]], str] | None = None


@dataclass
class ServerState:
    faults: Faults = field(default_factory=Faults)
    requests: int = 0  # chat requests received (failed ones included)
    log: list[dict] = field(default_factory=list)  # the messages of every chat request, in arrival order
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Batcher:
    """Collects concurrent requests into one ``generate`` call (a single worker thread owns the model)."""

    def __init__(self, gen: HFGenerator, batch_size: int, wait_s: float):
        self.gen, self.batch_size, self.wait_s = gen, batch_size, wait_s
        self.q: queue.Queue[tuple[GenRequest, Future] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def submit(self, req: GenRequest) -> GenOutput:
        fut: Future = Future()
        self.q.put((req, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.batch_size:
                try:
                    nxt = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                batch.append(nxt)
            try:
                outs = self.gen.generate([r for r, _ in batch])
                for (_, fut), out in zip(batch, outs):
                    fut.set_result(out)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                for _, fut in batch:
                    fut.set_exception(exc)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join(timeout=10)


def make_app(model_dir: str | Path | None, *, model_name: str = "tiny", batch_size: int = 8,
             batch_wait_s: float = 0.02, dtype: str = "fp32",
             state: ServerState | None = None) -> tuple[FastAPI, ServerState, Any]:
    state = state or ServerState()
    batcher = None
    if model_dir is not None:
        model, tok = load_model(str(model_dir), dtype=dtype)
        batcher = _Batcher(HFGenerator(model, tok, batch_size=batch_size), batch_size, batch_wait_s)
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "opentao-tests"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict) -> Any:  # sync: FastAPI runs it in its thread pool, so requests overlap
        f = state.faults
        with state.lock:
            state.requests += 1
            n = state.requests
            state.log.append({"n": n, "messages": body.get("messages")})
        if f.delay_s:
            time.sleep(f.delay_s)
        if f.fail_every or n <= f.fail_first:
            return JSONResponse({"error": {"message": f"injected failure #{n}", "type": "test"}},
                                status_code=f.fail_status, headers={"retry-after": "0"})
        messages = body.get("messages") or []
        stop = body.get("stop") or ()
        req = GenRequest(messages, float(body.get("temperature") or 0.0), int(body.get("max_tokens") or 64),
                         int(body.get("seed") or 0), (stop,) if isinstance(stop, str) else tuple(stop))
        if f.reply is not None:
            text = f.reply(messages)
            out = GenOutput(text, len(text.split()))
        elif batcher is None:
            return JSONResponse({"error": {"message": "no model loaded"}}, status_code=500)
        else:
            out = batcher.submit(req)
        if f.garbage is not None:
            out = GenOutput(f.garbage, out.num_tokens)
        prompt_tokens = (len(batcher.gen.tok(batcher.gen.render(messages), add_special_tokens=False)["input_ids"])
                         if batcher is not None else sum(len(m.get("content", "").split()) for m in messages))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", model_name),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": out.num_tokens,
                      "total_tokens": prompt_tokens + out.num_tokens},
        }

    @app.exception_handler(Exception)
    async def _error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": {"message": f"{type(exc).__name__}: {exc}"}}, status_code=500)

    return app, state, batcher


@dataclass
class Served:
    base_url: str
    state: ServerState

    @property
    def faults(self) -> Faults:
        return self.state.faults


@contextmanager
def serve_model(model_dir: str | Path | None, **opts: Any) -> Iterator[Served]:
    """Run the app with uvicorn in a background thread on 127.0.0.1 (a free port); yields its base URL.

    ``model_dir=None`` serves no model (use ``faults.reply``). Fault knobs may be passed as keyword options
    (``fail_first=2``) or changed later on ``served.faults``.
    """
    fault_keys = set(Faults.__dataclass_fields__)
    faults = Faults(**{k: opts.pop(k) for k in list(opts) if k in fault_keys})
    app, state, batcher = make_app(model_dir, state=ServerState(faults=faults), **opts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the test server did not start")
    try:
        yield Served(f"http://127.0.0.1:{port}/v1", state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        if batcher is not None:
            batcher.close()


