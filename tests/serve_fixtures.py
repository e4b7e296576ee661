"""Fixtures and helpers shared by the gateway and flywheel tests (imported by them; pytest picks them up)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from opentao.generate.backend import GenOutput


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny Llama re-initialised (another seed, larger init scale): same architecture, different answers.

    At the default init scale a 2-layer model with tied embeddings just repeats the prompt's last token; at 0.2
    its greedy answers are varied gibberish, different from the base's.
    """
    from transformers import AutoConfig, LlamaForCausalLM

    cfg = AutoConfig.from_pretrained(tiny_model_dir)
    cfg.initializer_range = 0.2
    torch.manual_seed(1)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    out = tmp_path_factory.mktemp("other-llama")
    model.save_pretrained(out)
    for f in Path(tiny_model_dir).iterdir():
        if "token" in f.name or f.name.endswith((".jinja", ".txt")) or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


class EchoGenerator:
    """A stub backend: answers '<tag>: <last user turn>' after an optional delay (for batching and swap tests)."""

    def __init__(self, tag: str = "echo", delay_s: float = 0.0):
        self.tag, self.delay_s, self.batches = tag, delay_s, []

    def generate(self, requests):
        self.batches.append(len(requests))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [GenOutput(f"{self.tag}: {r.messages[-1]['content']}"[: 10 * r.max_new_tokens], 3) for r in requests]
