"""Dynamic batching: concurrent requests share one ``generate`` call on one worker thread.

A request becomes a *job* (its ``n`` choices, or its list of prompts, as ``GenRequest``\\s). The batching loop
waits for the first job, then keeps collecting for up to ``max_wait_ms`` or until ``max_batch`` sequences are
queued, and runs the whole batch on a single worker thread (generation is compute-bound; two batches at once
would only contend for the same cores). While a batch runs, new jobs queue up, so under load each batch is
full as soon as the previous one ends and the wait costs nothing.

Each batch reads ``host.current`` once, so a model swap never splits a batch; the version is returned with the
outputs. A job whose prompt plus ``max_tokens`` exceeds the model's context fails alone (``ContextTooLong``);
a generator exception fails the jobs of that batch only. A queue over ``max_queue`` sequences refuses new
jobs (``Overloaded`` → 503) instead of growing without bound.

Simplification: ``HFGenerator`` samples a batch from one seed, so a request's ``seed`` is best-effort (exact only
when its batch holds it alone).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from opentao.generate.hf import GenOutput, GenRequest
from opentao.serve.host import ModelHost

log = logging.getLogger(__name__)


class Overloaded(Exception):
    pass


class ContextTooLong(ValueError):
    pass


@dataclass
class JobResult:
    outputs: list[GenOutput]
    version: str
    prompt_tokens: list[int]
    queued_s: float
    batch_sequences: int


@dataclass
class _Job:
    requests: list[GenRequest]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(self, host: ModelHost, *, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 2048,
                 on_batch=None):
        self.host = host
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch  # callback(sequences, seconds) for metrics
        self._pending: collections.deque[_Job] = collections.deque()
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return self._queued

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Finish the queued jobs, then stop."""
        if self._task is None:
            return
        while self._pending:
            await asyncio.sleep(0.01)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, requests: list[GenRequest]) -> JobResult:
        if self._task is None:
            raise RuntimeError("Batcher.start() was not awaited")
        if self._queued + len(requests) > self.max_queue:
            raise Overloaded(f"server busy: {self._queued} sequences queued (limit {self.max_queue})")
        job = _Job(requests, self._loop.create_future())
        self._pending.append(job)
        self._queued += len(requests)
        self._wake.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                deadline = time.monotonic() + self.max_wait
                while self._queued < self.max_batch and time.monotonic() < deadline:
                    await asyncio.sleep(min(0.001, self.max_wait))
                batch, size = [], 0
                while self._pending and (not batch or size + len(self._pending[0].requests) <= self.max_batch):
                    job = self._pending.popleft()
                    self._queued -= len(job.requests)
                    if not job.future.done():  # a client that went away is not generated for
                        batch.append(job)
                        size += len(job.requests)
                if batch:
                    try:
                        await self._loop.run_in_executor(self._executor, self._run_batch, batch)
                    except Exception as exc:  # a bug in batch handling must not stop the loop for everyone
                        log.exception("batch failed")
                        for job in batch:
                            self._resolve(job.future, exc=exc)

    def _resolve(self, fut: asyncio.Future, result=None, exc: BaseException | None = None) -> None:
        def apply() -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._loop.call_soon_threadsafe(apply)

    def _run_batch(self, batch: list[_Job]) -> None:
        served = self.host.current  # one model for the whole batch, even if a swap lands meanwhile
        started = time.monotonic()
        runnable, tokens = [], {}
        for job in batch:
            try:
                counts = [served.prompt_tokens(r.messages) for r in job.requests]
                limit = served.max_context
                worst = max(c + r.max_new_tokens for c, r in zip(counts, job.requests))
                if limit and worst > limit:
                    raise ContextTooLong(f"this model's context is {limit} tokens, but the prompt plus max_tokens "
                                         f"needs {worst}: shorten the messages or lower max_tokens")
            except Exception as exc:
                self._resolve(job.future, exc=exc)
                continue
            tokens[id(job)] = counts
            runnable.append(job)
        if not runnable:
            return
        flat = [r for job in runnable for r in job.requests]
        try:
            outputs = served.generator.generate(flat)
        except Exception as exc:
            log.exception("generation failed for a batch of %d sequences", len(flat))
            for job in runnable:
                self._resolve(job.future, exc=exc)
            return
        seconds = time.monotonic() - started
        if self.on_batch is not None:
            self.on_batch(len(flat), seconds)
        i = 0
        for job in runnable:
            k = len(job.requests)
            res = JobResult(outputs[i : i + k], served.version, tokens[id(job)], started - job.enqueued, len(flat))
            self._resolve(job.future, res)
            i += k
