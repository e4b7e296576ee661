"""The OpenAI-compatible gateway: ``create_app(...)`` builds the FastAPI app that ``tao serve`` runs.

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream: true`` gives SSE),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text). The official ``openai`` client works
against it unchanged (``base_url=http://host:port/v1``).

A completion request goes: API key (401, nothing logged) → per-key rate limit (429) → body read with a size
cap (413) → UTF-8, JSON and schema checks (400, one readable message) → model name (404) → the batcher (one
``generate`` call for many concurrent requests) → a row in the inference table, fsync'd → the response. So a
client that got a 200 has its row on disk; if the row cannot be written the client gets a 500 instead. Every
answer after the key check is logged with its status, errors included (the flywheel keeps only the 200s).

**Log-probabilities** (chat only): ``logprobs: true`` with ``top_logprobs`` 0–20 returns, in OpenAI's format
(``choices[i].logprobs.content``: ``token``, ``logprob``, ``bytes``, ``top_logprobs``), every generated token's
log-probability under the model's log-softmax over its *raw* logits — temperature 1, before the sampler's
temperature and top-p — so they describe the model rather than the sampler (see ``opentao.generate.backend``). The
token that ends the answer (end of turn) is not listed; a logprob below -9999 is reported as -9999.0 (JSON has
no -inf), as OpenAI does. ``/v1/completions`` refuses ``logprobs`` (its legacy format is not implemented).

Simplification: ``stream: true`` is served from the finished generation (a batched HF ``generate`` has no
per-request token stream): the SSE chunks carry the whole answer as soon as it is logged. The wire format is
what OpenAI clients expect; time to first token equals the full latency. ``/v1/completions`` renders its
prompt as one user turn through the chat template (the served models are chat models).

Without ``serve_dir`` nothing is logged, no keys are checked and the model never changes: the mode for local
use and for tests that need an OpenAI-compatible endpoint (see ``opentao.testing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError

from opentao.errors import TaoError
from opentao.generate.backend import Generator, GenOutput, GenRequest, TokenLogprob
from opentao.serve.batcher import Batcher, ContextTooLong, JobResult, Overloaded, ShuttingDown
from opentao.serve.dashboard import add_dashboard
from opentao.serve.host import ModelHost, Served, load_served, read_pointer, write_pointer
from opentao.serve.keys import KEYS_FILE, KeyRing
from opentao.serve.log import InferenceLog
from opentao.serve.metrics import BATCH_BUCKETS, Metrics
from opentao.serve.redact import redact, redact_messages
from opentao.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    UnacceptableJSON,
    bounded_int,
    describe_validation_error,
    error_body,
    find_lone_surrogate,
)

log = logging.getLogger(__name__)

MIN_SAMPLING_TEMPERATURE = 1e-2
MIN_LOGPROB = -9999.0  # what OpenAI reports for a token too unlikely to print; JSON has no -inf


@dataclass
class ServeSettings:
    served_name: str = "tao"  # the model id clients pass; the concrete version is in system_fingerprint
    max_batch: int = 32  # sequences per generate() call
    max_wait_ms: float = 5.0  # how long the batcher waits to fill a batch when the server is idle
    max_queue: int = 256  # queued sequences before new requests get 503 with Retry-After
    shutdown_timeout_s: float = 20.0  # on SIGTERM: in-flight requests get this long, then a 503
    auth: bool | None = None  # True: a key is always required; False: off; None: required iff keys.json exists
    max_body_bytes: int = 1_000_000
    max_tokens_limit: int = 1024  # a request asking for more gets a 400
    default_max_tokens: int = 256
    max_n: int = 8
    rate_limit_rpm: int = 0  # per key, unless keys.json sets "rpm" for the key; 0 = unlimited
    redact_pii: bool = False
    reload_poll_s: float = 2.0
    top_p: float = 0.95
    dtype: str = "auto"
    device: str = "auto"
    delta_uri: str | None = None
    wal_segment_rows: int = 5000
    wal_segment_seconds: float = 60.0


class HTTPError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def response(self, request_id: str) -> JSONResponse:
        return JSONResponse(error_body(self.message, self.type, self.code, self.param), status_code=self.status,
                            headers={"x-request-id": request_id, **self.headers})


class ClientGone(Exception):
    """The client disconnected while its request waited for the batcher: its work was cancelled."""


async def _until_disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so the next message says so)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _NoConstants(ValueError):
    pass


def _reject_constant(name: str):
    raise _NoConstants(f"{name} is not valid JSON")


async def read_body(request: Request, limit: int) -> bytes:
    too_big = HTTPError(413, f"request body is over the limit of {limit:,} bytes", code="request_too_large")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_utf8") from None
    if not text.strip():
        raise HTTPError(400, "request body is empty: send a JSON object", code="invalid_json")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_int=bounded_int)
    except UnacceptableJSON as exc:
        raise HTTPError(400, f"request body has {exc}", code="invalid_value") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, NaN/Infinity, anything else json refuses
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) \
            else str(exc) if isinstance(exc, _NoConstants) else "nested too deeply" \
            if isinstance(exc, RecursionError) else "unparseable"
        raise HTTPError(400, f"request body is not valid JSON: {detail}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise HTTPError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    where = find_lone_surrogate(data)
    if where is not None:
        raise HTTPError(400, f"invalid value for '{where}': a lone UTF-16 surrogate (e.g. \\ud800) is not text",
                        param=where.split(".")[0].split("[")[0], code="invalid_unicode")
    return data


def _finish(out: GenOutput, budget: int) -> str:
    return "length" if out.num_tokens >= budget else "stop"


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text) or [""]


def _token_json(t: TokenLogprob) -> dict[str, Any]:
    lp = t.logprob if t.logprob == t.logprob else MIN_LOGPROB  # NaN → the floor
    return {"token": t.token, "logprob": min(0.0, max(MIN_LOGPROB, lp)), "bytes": list(t.token_bytes)}


def logprobs_json(out: GenOutput) -> dict[str, Any] | None:
    """A choice's ``logprobs`` object in the chat completions format (None when none were computed)."""
    if out.logprobs is None:
        return None
    return {"content": [{**_token_json(t), "top_logprobs": [_token_json(a) for a in t.top]} for t in out.logprobs],
            "refusal": None}


class Gateway:
    """Everything a request needs: settings, keys, the model host and its batcher, the inference log, metrics."""

    def __init__(self, host: ModelHost, *, settings: ServeSettings, keys: KeyRing, inference_log: InferenceLog | None):
        self.host, self.settings, self.keys, self.log = host, settings, keys, inference_log
        self.metrics = Metrics()
        self.batcher = Batcher(host, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                               max_queue=settings.max_queue, on_batch=self._on_batch)
        m = self.metrics
        m.gauge("tao_queue_sequences", lambda: [({}, self.batcher.queued)], "sequences waiting for a batch")
        m.gauge("tao_model_info", lambda: [({"version": self.host.current.version}, 1)], "the served model")
        m.gauge("tao_model_swaps", lambda: [({}, self.host.swaps)], "hot swaps since start")
        m.gauge("tao_batcher", lambda: [({"stat": k}, v) for k, v in self.batcher.stats.items()],
                "requests refused (queue full), cancelled (client gone) or failed at shutdown")
        if inference_log is not None:
            m.gauge("tao_inference_log", lambda: [({"stat": k}, v) for k, v in inference_log.stats.items()],
                    "inference table writer statistics")

    def _on_batch(self, sequences: int, seconds: float) -> None:
        self.metrics.observe("tao_batch_sequences", sequences, BATCH_BUCKETS, "sequences per generate() call")
        self.metrics.observe("tao_batch_seconds", seconds, help="wall time of one generate() call")

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.log is not None:
            await asyncio.to_thread(self.log.start)
        await self.batcher.start()
        self.host.start_watching()

    def begin_shutdown(self) -> None:
        """Refuse new work, give in-flight requests ``shutdown_timeout_s``, then fail them (call on the loop)."""
        self.batcher.begin_shutdown(self.settings.shutdown_timeout_s)

    async def stop(self) -> None:
        self.host.stop()
        await self.batcher.stop(self.settings.shutdown_timeout_s)
        if self.log is not None:
            await asyncio.to_thread(self.log.close)

    # --- logging -----------------------------------------------------------------------------------------
    async def record(self, row: dict[str, Any]) -> None:
        """Append a row and wait until it is durable (no-op without an inference table)."""
        if self.log is None:
            return
        if self.settings.redact_pii:
            msgs = row.get("messages", [])
            nested = bool(msgs) and isinstance(msgs[0], list)  # a completions request with several prompts
            row["messages"] = [redact_messages(m) for m in msgs] if nested else redact_messages(msgs)
            row["response"] = redact(row.get("response", ""))
            row["choices"] = [{**c, "text": redact(c["text"])} for c in row.get("choices", [])]
            row["redacted"] = True
        await asyncio.wrap_future(self.log.append(row))

    # --- requests ----------------------------------------------------------------------------------------
    async def handle(self, request: Request, endpoint: str) -> Response:
        t0, start = time.time(), time.perf_counter()
        prefix = "chatcmpl-" if endpoint == "chat.completions" else "cmpl-"
        request_id = prefix + secrets.token_hex(12)
        key_id, refused = self._authenticate(request)
        if refused is not None:  # not logged: the caller is unknown
            self.metrics.inc("tao_requests_total", endpoint=endpoint, status=str(refused.status),
                             help="requests by status")
            return refused.response(request_id)
        row: dict[str, Any] = {"request_id": request_id, "time": t0, "key_id": key_id, "endpoint": endpoint,
                               "model_version": self.host.current.version, "messages": [], "choices": []}
        try:
            response = await self._serve(request, endpoint, request_id, row)
        except ClientGone:
            row.update(status=499, error="the client disconnected before the answer: its work was cancelled")
            response = HTTPError(499, "client disconnected").response(request_id)
        except HTTPError as err:
            row.update(status=err.status, error=err.message)
            response = err.response(request_id)
        except Exception as exc:  # a bug or a failed generation: the client gets a 500, the row says why
            log.exception("request %s failed", request_id)
            row.update(status=500, error=f"{type(exc).__name__}: {exc}"[:500])
            response = HTTPError(500, "the server failed to answer this request", "server_error",
                                 "internal_error").response(request_id)
        row["latency_ms"] = (time.perf_counter() - start) * 1000
        try:
            await self.record(row)
        except Exception as exc:
            log.error("could not log request %s: %s", request_id, exc)
            response = HTTPError(500, "the request could not be recorded, so it is not answered", "server_error",
                                 "log_write_failed").response(request_id)
        status = str(response.status_code)
        self.metrics.inc("tao_requests_total", endpoint=endpoint, status=status, help="requests by status")
        self.metrics.observe("tao_request_seconds", time.perf_counter() - start, endpoint=endpoint,
                             help="request latency, logging included")
        return response

    async def _serve(self, request: Request, endpoint: str, request_id: str, row: dict[str, Any]) -> Response:
        s = self.settings
        if not self.keys.allow(row["key_id"]):
            raise HTTPError(429, "rate limit reached for this API key: slow down", "requests", "rate_limit_exceeded")
        data = parse_json(await read_body(request, s.max_body_bytes))
        schema = ChatCompletionRequest if endpoint == "chat.completions" else CompletionRequest
        try:
            body = schema.model_validate(data)
        except ValidationError as exc:
            message, param = describe_validation_error(exc)
            raise HTTPError(400, message, param=param, code="invalid_value") from None
        if endpoint == "chat.completions":
            conversations = [body.chat()]
        else:
            conversations = [[{"role": "user", "content": p}] for p in body.prompts()]
        row.update(messages=conversations[0] if len(conversations) == 1 else conversations, params=body.params(),
                   metadata={"metadata": body.metadata or {}, "user": body.user or ""})
        if body.model not in (s.served_name, self.host.current.version):
            raise HTTPError(404, f"the model '{body.model}' does not exist: this server serves '{s.served_name}'",
                            code="model_not_found", param="model")
        problem = body.unsupported()
        if problem:
            raise HTTPError(400, problem, code="unsupported_parameter")
        top_logprobs = body.top_logprobs_asked()
        if top_logprobs is not None and not getattr(self.host.current.generator, "supports_logprobs", False):
            raise HTTPError(400, "logprobs are not supported by this server's model backend", param="logprobs",
                            code="unsupported_parameter")
        budget = body.token_budget(s.default_max_tokens)
        if budget > s.max_tokens_limit:
            raise HTTPError(400, f"max_tokens is {budget}, over this server's limit of {s.max_tokens_limit}",
                            param="max_tokens", code="max_tokens_too_large")
        if body.n > s.max_n:
            raise HTTPError(400, f"n is {body.n}, over this server's limit of {s.max_n}", param="n",
                            code="invalid_value")
        seed = body.seed if body.seed is not None else secrets.randbits(31)
        # logits / a near-zero temperature overflow to inf → NaN probabilities: serve those greedily
        temperature = body.temperature if body.temperature >= MIN_SAMPLING_TEMPERATURE else 0.0
        reqs = [GenRequest(c, temperature, budget, seed, body.stops(), top_logprobs)
                for c in conversations for _ in range(body.n)]
        try:
            res = await self._submit_unless_gone(request, reqs)
        except Overloaded as exc:
            code = "shutting_down" if isinstance(exc, ShuttingDown) else "overloaded"
            raise HTTPError(503, str(exc), "server_error", code,
                            headers={"retry-after": str(exc.retry_after_s)}) from None
        except ContextTooLong as exc:
            raise HTTPError(400, str(exc), param="messages", code="context_length_exceeded") from None
        choices = [{"text": o.text, "finish_reason": _finish(o, budget)} for o in res.outputs]
        completion_tokens = sum(o.num_tokens for o in res.outputs)
        prompt_tokens = sum(res.prompt_tokens[:: body.n])
        row.update(model_version=res.version, status=200, response=choices[0]["text"], choices=choices,
                   prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        self.metrics.inc("tao_tokens_total", prompt_tokens, kind="prompt", help="tokens processed")
        self.metrics.inc("tao_tokens_total", completion_tokens, kind="completion", help="tokens processed")
        payload = self._payload(endpoint, request_id, body, res, choices, prompt_tokens, completion_tokens)
        if endpoint == "chat.completions" and top_logprobs is not None:
            for c, o in zip(payload["choices"], res.outputs):
                c["logprobs"] = logprobs_json(o)
        headers = {"x-request-id": request_id, "x-model-version": res.version}
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(self._sse(payload, endpoint, include_usage), media_type="text/event-stream",
                                     headers={**headers, "cache-control": "no-cache"})
        return JSONResponse(payload, headers=headers)

    async def _submit_unless_gone(self, request: Request, reqs: list[GenRequest]) -> JobResult:
        """The batcher's result, unless the client disconnects first: then its job is cancelled (dropped from
        the queue, or left unanswered if its batch already runs) and ``ClientGone`` is raised."""
        job = asyncio.ensure_future(self.batcher.submit(reqs))
        gone = asyncio.ensure_future(_until_disconnected(request))
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not job.done():  # the client went away (or this handler was cancelled): nobody wants the answer
                job.cancel()
                self.metrics.inc("tao_cancelled_total", help="requests whose client disconnected before the answer")
                await asyncio.wait({job})  # the cancellation reaches the batcher (the job leaves its queue)
        if job.cancelled():
            raise ClientGone()
        return job.result()

    def _authenticate(self, request: Request) -> tuple[str | None, HTTPError | None]:
        """(key id, None) when the request may proceed; else (None, a 401, or a 503 while keys.json is unreadable)."""
        try:
            key_id = self.keys.verify(request.headers.get("authorization"))
        except TaoError as exc:  # a keys file edited into garbage: refuse everyone (fail closed), say why in the log
            log.error("%s", exc)
            return None, HTTPError(503, "the server cannot read its API keys: try again later", "server_error",
                                   "auth_unavailable")
        if key_id is not None:
            return key_id, None
        if not self.keys.has_keys:
            return None, HTTPError(401, "this server has no API keys: every request is refused until its operator "
                                   "adds one ('tao keys add ID')", code="invalid_api_key")
        return None, HTTPError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                               code="invalid_api_key")

    def _payload(self, endpoint: str, request_id: str, body, res: JobResult, choices: list[dict],
                 prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        common = {"id": request_id, "created": int(time.time()), "model": body.model,
                  "system_fingerprint": res.version, "usage": usage}
        if endpoint == "chat.completions":
            return {**common, "object": "chat.completion", "choices": [
                {"index": i, "message": {"role": "assistant", "content": c["text"]}, "logprobs": None,
                 "finish_reason": c["finish_reason"]} for i, c in enumerate(choices)]}
        return {**common, "object": "text_completion", "choices": [
            {"index": i, "text": c["text"], "logprobs": None, "finish_reason": c["finish_reason"]}
            for i, c in enumerate(choices)]}

    async def _sse(self, payload: dict[str, Any], endpoint: str, include_usage: bool):
        def event(choices: list[dict], usage=None) -> str:
            chunk = {k: payload[k] for k in ("id", "created", "model", "system_fingerprint")}
            chunk["object"] = "chat.completion.chunk" if endpoint == "chat.completions" else "text_completion"
            chunk["choices"] = choices
            if include_usage:
                chunk["usage"] = usage
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        for c in payload["choices"]:
            i = c["index"]
            if endpoint == "chat.completions":
                yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                if c["logprobs"] is not None:  # one chunk: the text with all its tokens' logprobs
                    yield event([{"index": i, "delta": {"content": c["message"]["content"]},
                                  "logprobs": c["logprobs"], "finish_reason": None}])
                    pieces = []
                else:
                    pieces = _pieces(c["message"]["content"])
                for piece in pieces:
                    yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None}])
                yield event([{"index": i, "delta": {}, "finish_reason": c["finish_reason"]}])
            else:
                for piece in _pieces(c["text"]):
                    yield event([{"index": i, "text": piece, "logprobs": None, "finish_reason": None}])
                yield event([{"index": i, "text": "", "logprobs": None, "finish_reason": c["finish_reason"]}])
        if include_usage:
            yield event([], payload["usage"])
        yield "data: [DONE]\n\n"

    def models(self, request: Request) -> Response:
        refused = self._authenticate(request)[1]
        if refused is not None:
            return refused.response("models")
        cur = self.host.current
        return JSONResponse({"object": "list", "data": [
            {"id": self.settings.served_name, "object": "model", "created": int(cur.loaded_at), "owned_by": "opentao",
             "version": cur.version}]})


def _host_for(model: str | Generator | ModelHost | None, serve_dir: Path | None, s: ServeSettings) -> ModelHost:
    def loader(version: str, path: str) -> Served:
        return load_served(version, path, batch_size=s.max_batch, top_p=s.top_p, dtype=s.dtype, device=s.device)

    if isinstance(model, ModelHost):
        return model
    if model is not None and not isinstance(model, str):
        if not hasattr(model, "generate"):
            raise TypeError("model must be a model name/folder, a Generator or a ModelHost")
        return ModelHost(Served("custom", model))
    if serve_dir is None:
        return ModelHost(loader("base", model or "bundled"))
    pointer = read_pointer(serve_dir)
    if pointer is None:
        from opentao.models import resolve_model

        pointer = write_pointer(serve_dir, "base", resolve_model(model or "bundled"), "first start of the server")
    elif model is not None:
        log.info("serving %s from %s (the pointer file wins over --model)", pointer["version"], serve_dir)
    return ModelHost(loader(pointer["version"], pointer["path"]), pointer_dir=serve_dir, loader=loader,
                     poll_s=s.reload_poll_s)


def create_app(model: str | Generator | ModelHost | None = None, *, serve_dir: str | Path | None = None,
               settings: ServeSettings | None = None) -> FastAPI:
    """The gateway app. ``model``: a model name/folder (loaded now), any ``Generator``, or a ``ModelHost``.

    With ``serve_dir``: API keys from ``serve_dir/keys.json`` (``settings.auth``: None, the default, requires a
    key once that file exists, even with no keys left in it; True always; False never), the inference
    table in ``serve_dir``, and the model from ``serve_dir/current.json`` (created from ``model`` on first
    start), hot-swapped when the pointer changes. Without it: no logging, no auth, a fixed model.
    """
    s = settings or ServeSettings()
    root = Path(serve_dir) if serve_dir is not None else None
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    host = _host_for(model, root, s)
    inference_log = None
    if root is not None:
        inference_log = InferenceLog(root, segment_rows=s.wal_segment_rows, segment_seconds=s.wal_segment_seconds,
                                     delta_uri=s.delta_uri)
    keys = KeyRing(root / KEYS_FILE if root is not None else None, default_rpm=s.rate_limit_rpm,
                   required=s.auth if root is not None else False)
    gw = Gateway(host, settings=s, keys=keys, inference_log=inference_log)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(title="opentao gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw

    @app.post("/v1/chat/completions", openapi_extra=_body_spec(ChatCompletionRequest), responses=_ERRORS)
    async def chat_completions(request: Request) -> Response:
        return await gw.handle(request, "chat.completions")

    @app.post("/v1/completions", openapi_extra=_body_spec(CompletionRequest), responses=_ERRORS)
    async def completions(request: Request) -> Response:
        return await gw.handle(request, "completions")

    @app.get("/v1/models", responses={401: _ERRORS[401]})
    async def models(request: Request) -> Response:
        return gw.models(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model_version": gw.host.current.version, "queued": gw.batcher.queued}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(gw.metrics.render(), media_type="text/plain; version=0.0.4")

    add_dashboard(app, gw, root)  # GET /dashboard: read-only HTML, same API key
    _add_schemas_to_openapi(app, s)
    return app


# --- OpenAPI: request bodies are read by hand (to order the checks), so their schemas are declared here ----
_ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "code": {"type": ["string", "null"]}, "param": {"type": ["string", "null"]}}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": desc, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for code, desc in ((400, "invalid request"), (401, "missing or wrong API key"), (404, "unknown model"),
                       (413, "body too large"), (429, "rate limited"), (500, "server error"), (503, "overloaded"))
}


def _body_spec(model) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}},
        "responses": {"200": {"content": {"text/event-stream": {"schema": {}}}}}}


def _add_schemas_to_openapi(app: FastAPI, s: ServeSettings) -> None:
    """Request schemas with this server's limits, so a schema-valid request is one the server accepts."""
    base = app.openapi
    limits = {"model": {"type": "string", "enum": [s.served_name]}, "n": {"type": "integer", "minimum": 1,
                                                                          "maximum": s.max_n}}
    for name in ("max_tokens", "max_completion_tokens"):
        limits[name] = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": s.max_tokens_limit}, {"type": "null"}]}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = base()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in (ChatCompletionRequest, CompletionRequest):
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(js.pop("$defs", {}))
            props = js["properties"]
            props.update({k: v for k, v in {**limits, **model.OPENAPI_OFF}.items() if k in props})
            js.update(model.OPENAPI_EXTRA)
            schemas[model.__name__] = js
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
