"""Shared fixtures: a tiny random Llama (no download) that uses the bundled model's real tokenizer."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# One cache for the whole test session (the bundled model is converted at most once per machine).
os.environ.setdefault("OPENTAO_CACHE", str(Path.home() / ".cache" / "opentao"))


@pytest.fixture(scope="session")
def bundled_tokenizer_dir(tmp_path_factory) -> Path:
    """The SmolLM2 tokenizer (with its chat template), read from the bundled GGUF once."""
    from transformers import AutoTokenizer

    from opentao.models import bundled_gguf

    gguf = bundled_gguf()
    out = tmp_path_factory.mktemp("tok")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bundled_tokenizer_dir) -> Path:
    """A 2-layer random Llama with the real tokenizer, saved as an HF folder (~1.6M parameters)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(bundled_tokenizer_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    shutil.copytree(bundled_tokenizer_dir, out, dirs_exist_ok=True)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
