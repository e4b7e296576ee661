"""Held-out evaluation shared by every task: greedy answers → a gold metric per example → accuracy with a CI.

A task plugs in a :class:`TaskEvaluator`: which gold fields an eval row needs, and how one prediction is
graded against its row. This is the only place gold is read (besides the benchmark's comparison arms).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from opentao.data import checked_messages, read_table_rows
from opentao.errors import TaoError
from opentao.records import EvalResult
from opentao.store import RunStore

if TYPE_CHECKING:
    from opentao.generate.backend import Generator


@runtime_checkable
class TaskEvaluator(Protocol):
    """Grades one greedy prediction against one eval row (which holds ``messages`` and the gold fields)."""

    task: str
    gold_fields: tuple[str, ...]

    def grade(self, row: dict, prediction: str) -> tuple[bool, str]: ...


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion k/n."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80]


def load_eval_rows(path: str | Path, gold_fields: tuple[str, ...], task: str,
                   max_examples: int | None = None) -> list[dict]:
    rows = read_table_rows(path)
    if not rows:
        raise TaoError(f"{path}: the eval set is empty")
    need = ("messages", *gold_fields)
    for i, r in enumerate(rows, 1):
        missing = [k for k in need if k not in r]
        if missing:
            raise TaoError(f"{path}: row {i}: a {task} eval row needs {', '.join(map(repr, need))} "
                           f"(missing {', '.join(map(repr, missing))})")
        r["messages"] = checked_messages({"messages": r["messages"]}, f"{path}: row {i}")
    return rows[:max_examples] if max_examples else rows


def count_parameters_of(path: str) -> int:
    """The parameter count of a model folder, without loading its weights (built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters())


def evaluate_task(
    model: str,
    data: str | Path,
    evaluator: TaskEvaluator,
    *,
    label: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 128,
    stop: tuple[str, ...] = (),
    store: RunStore | None = None,
    round_: int = 0,
    dtype: str = "auto",
    device: str = "auto",
    engine: str = "hf",
    make_generator: Callable[[], Generator] | None = None,
) -> dict:
    """Greedy answers on the held-out split → accuracy (+ Wilson 95% CI), per-example correctness, mean new
    tokens, latency per request (batched) and parameter count. Cached in ``store`` when one is given.

    ``engine`` (``eval.engine``): ``hf`` or ``vllm`` (``auto`` as in :mod:`opentao.generate.engines`). Compare
    models under one engine: in bf16 the two engines' kernels round differently, so greedy texts can differ.
    ``make_generator``: an engine for ``model`` that someone else already owns (:class:`~opentao.generate.engines.
    SharedEngine`), used instead of building one; it must be of the ``engine`` backend, and is called only when the
    answers are not cached."""
    from opentao.generate.engines import close_generator, split_engine
    from opentao.generate.greedy import greedy_answers

    rows = load_eval_rows(data, evaluator.gold_fields, evaluator.task, max_examples)
    label = label or model
    key = f"r{round_}-{safe_label(label)}"
    if store is not None and store.has_part("eval_results", key):
        done = store.read_summary(f"eval-{key}")
        if done:
            return done
    on_ray, backend = split_engine(engine)
    if on_ray or backend not in ("hf", "vllm"):
        raise TaoError(f"eval.engine {engine!r}: use hf, vllm or auto")
    t_load = time.perf_counter()
    if make_generator is not None:
        from opentao.models import resolve_model

        gen = make_generator()
        parameters = count_parameters_of(resolve_model(model))
    elif backend == "vllm":
        from opentao.generate.vllm import VLLMGenerator

        gen = VLLMGenerator(model, dtype=dtype, device=device)
        parameters = count_parameters_of(gen.path)
    else:
        from opentao.generate.hf import HFGenerator
        from opentao.models import load_model

        lm, tok = load_model(model, dtype=dtype, device=device)
        gen = HFGenerator(lm, tok, batch_size=batch_size)
        parameters = sum(p.numel() for p in lm.parameters())
    startup = time.perf_counter() - t_load
    t0 = time.perf_counter()
    try:
        outputs = greedy_answers(gen, [r["messages"] for r in rows], max_new_tokens=max_new_tokens, stop=stop,
                                 batch_size=batch_size, progress=f"eval {label}")
    finally:
        close_generator(gen)
    seconds = time.perf_counter() - t0
    results = []
    for r, out in zip(rows, outputs):
        ok, err = evaluator.grade(r, out.text)
        results.append(EvalResult(label, str(r.get("id", "")), out.text, ok, round_, out.num_tokens, err))
    k, n = sum(e.correct for e in results), len(results)
    lo, hi = wilson_ci(k, n)
    summary = {
        "task": evaluator.task,
        "model": label,
        "model_path": model,
        "n": n,
        "correct": k,
        "accuracy": k / n,
        "ci95": [lo, hi],
        "mean_new_tokens": sum(e.num_tokens for e in results) / n,
        "mean_response_chars": sum(len(e.prediction) for e in results) / n,
        "seconds": seconds,
        "seconds_per_request": seconds / n,
        "batch_size": batch_size,
        "engine": backend,
        "startup_seconds": startup,
        "parameters": parameters,
        "per_example": {"ids": [e.example_id for e in results], "correct": [bool(e.correct) for e in results]},
    }
    if store is not None:
        store.write_part("eval_results", key, results, EvalResult.SCHEMA)
        store.write_summary(f"eval-{key}", summary)
    return summary
