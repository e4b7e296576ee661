"""Dynamic batching: concurrent requests share one ``generate`` call on one worker thread.

A request becomes a *job* (its ``n`` choices, or its list of prompts, as ``GenRequest``\\s). The batching loop
waits for the first job, then keeps collecting for up to ``max_wait_ms`` or until ``max_batch`` sequences are
queued, and runs the whole batch on a single worker thread (generation is compute-bound; two batches at once
would only contend for the same cores). While a batch runs, new jobs queue up, so under load each batch is
full as soon as the previous one ends and the wait costs nothing.

Each batch reads ``host.current`` once, so a model swap never splits a batch; the version is returned with the
outputs. A job whose prompt plus ``max_tokens`` exceeds the model's context fails alone (``ContextTooLong``);
a generator exception fails the jobs of that batch only.

Admission is bounded: a job that would take the queue over ``max_queue`` sequences is refused at once
(``Overloaded``, with a ``retry_after_s`` estimated from the queue depth and recent batch times) instead of
waiting behind work it cannot overtake. A job whose future is cancelled (its client went away) leaves the
queue at once and is never generated; one cancelled while its batch runs is simply not answered.

Shutdown (``begin_shutdown(timeout_s)``, then ``stop()``): new jobs are refused (``ShuttingDown``); queued and
running jobs are served until the deadline; then whatever is still queued fails with ``ShuttingDown``, and a
running batch is interrupted (``generator.interrupt()`` where the backend has one, e.g. ``HFGenerator``: it
ends within one decoding step) and its jobs fail too. ``stop()`` never waits for the worker beyond
``INTERRUPT_GRACE_S`` past the deadline; ``stuck`` says whether it had to leave one running.

Simplification: ``HFGenerator`` samples a batch from one seed, so a request's ``seed`` is best-effort (exact only
when its batch holds it alone).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from opentao.generate.backend import GenOutput, GenRequest
from opentao.serve.host import ModelHost

log = logging.getLogger(__name__)


INTERRUPT_GRACE_S = 5.0  # after the shutdown deadline, how long stop() waits for an interrupted batch


class Overloaded(Exception):
    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(Overloaded):
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
    def __init__(self, host: ModelHost, *, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256,
                 on_batch=None):
        self.host = host
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch  # callback(sequences, seconds) for metrics
        self.stats = {"refused_full": 0, "cancelled_queued": 0, "cancelled_running": 0, "failed_shutdown": 0,
                      "interrupted_batches": 0}
        self.stuck = False
        self._pending: collections.deque[_Job] = collections.deque()
        self._queued = 0
        self._running: list[_Job] = []
        self._running_generator = None
        self._abort = False  # the running batch was interrupted: its outputs are cut short, not answers
        self._batch_s = 1.0  # moving average of a batch's wall time, for Retry-After
        self._closing = False
        self._drain: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return self._queued

    def retry_after(self) -> int:
        """Seconds until the queue ahead of a new job has probably drained (1-60)."""
        batches = math.ceil(self._queued / max(1, self.max_batch)) + (1 if self._running else 0)
        return max(1, min(60, math.ceil(batches * self._batch_s)))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="batcher")

    def begin_shutdown(self, timeout_s: float) -> None:
        """Refuse new jobs; serve what is queued or running for up to ``timeout_s``, then fail it (on the loop)."""
        if self._closing or self._task is None:
            return
        self._closing = True
        self._drain = asyncio.ensure_future(self._drain_until(time.monotonic() + timeout_s))

    async def _drain_until(self, deadline: float) -> None:
        while (self._pending or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        while self._pending:
            job = self._pending.popleft()
            self._queued -= len(job.requests)
            if not job.future.done():
                self.stats["failed_shutdown"] += 1
                job.future.set_exception(ShuttingDown("the server is shutting down: retry on its next start"))
        if self._running:
            self._abort = True
            self.stats["interrupted_batches"] += 1
        grace = time.monotonic() + INTERRUPT_GRACE_S
        while self._running and time.monotonic() < grace:
            interrupt = getattr(self._running_generator, "interrupt", None)
            if interrupt is not None:
                interrupt()  # repeated: a batch that was just starting may have cleared the first call
            await asyncio.sleep(0.02)
        if self._running:
            self.stuck = True
            log.error("a generate() call is still running %.0f s after the shutdown deadline: leaving it",
                      INTERRUPT_GRACE_S)
            for job in self._running:
                self._resolve(job.future, exc=ShuttingDown("the server is shutting down"))

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Shut down (see ``begin_shutdown``; a no-op second time) and stop the loop; never waits forever."""
        if self._task is None:
            return
        self.begin_shutdown(timeout_s)
        if self._drain is not None:
            await self._drain
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        self._executor.shutdown(wait=not self.stuck, cancel_futures=True)

    async def submit(self, requests: list[GenRequest]) -> JobResult:
        if self._task is None:
            raise RuntimeError("Batcher.start() was not awaited")
        if self._closing:
            raise ShuttingDown("the server is shutting down: retry on its next start", retry_after_s=5)
        if self._queued + len(requests) > self.max_queue:
            self.stats["refused_full"] += 1
            raise Overloaded(f"server busy: {self._queued} sequences queued (limit {self.max_queue}): retry later",
                             retry_after_s=self.retry_after())
        job = _Job(requests, self._loop.create_future())
        job.future.add_done_callback(lambda fut: self._forget(job) if fut.cancelled() else None)
        self._pending.append(job)
        self._queued += len(requests)
        self._wake.set()
        return await job.future  # cancelling the awaiting task cancels this future: see _forget

    def _forget(self, job: _Job) -> None:
        """A cancelled job (its client went away) leaves the queue now, or is left unanswered if it is running."""
        try:
            self._pending.remove(job)
        except ValueError:
            if any(j is job for j in self._running):
                self.stats["cancelled_running"] += 1
            return
        self._queued -= len(job.requests)
        self.stats["cancelled_queued"] += 1

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
                    self._running = batch
                    try:
                        await self._loop.run_in_executor(self._executor, self._run_batch, batch)
                    except Exception as exc:  # a bug in batch handling must not stop the loop for everyone
                        log.exception("batch failed")
                        for job in batch:
                            self._resolve(job.future, exc=exc)
                    finally:
                        self._running = []

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
        self._running_generator = served.generator
        try:
            outputs = served.generator.generate(flat)
        except Exception as exc:
            log.exception("generation failed for a batch of %d sequences", len(flat))
            for job in runnable:
                self._resolve(job.future, exc=exc)
            return
        finally:
            self._running_generator = None
        seconds = time.monotonic() - started
        self._batch_s = 0.8 * self._batch_s + 0.2 * seconds
        if self._abort:  # interrupted at shutdown: the texts are cut short, so they are not answers
            for job in runnable:
                self._resolve(job.future, exc=ShuttingDown("the server shut down while generating this answer"))
            return
        if self.on_batch is not None:
            self.on_batch(len(flat), seconds)
        i = 0
        for job in runnable:
            k = len(job.requests)
            res = JobResult(outputs[i : i + k], served.version, tokens[id(job)], started - job.enqueued, len(flat))
            self._resolve(job.future, res)
            i += k
