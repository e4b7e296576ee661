"""Shared fixtures: a tiny random Llama (no download) that uses the bundled model's real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# One cache for the whole test session (the bundled model is converted at most once per machine).
os.environ.setdefault("OPENTAO_CACHE", str(Path.home() / ".cache" / "opentao"))
# `generate.engine: auto` means hf in tests (vLLM, when installed, is tested where a test asks for it by name),
# so the suite samples the same candidates with or without vLLM installed; subprocesses inherit it.
os.environ["OPENTAO_ENGINE"] = "hf"


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
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the real tokenizer, saved as an HF folder (~1.6M parameters, seed 0).

    The same builder serves the load test, the flywheel demo and CI (``opentao.testing``).
    """
    from opentao.testing import tiny_random_llama

    return tiny_random_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny Llama re-initialised (another seed, larger init scale): same architecture, different answers."""
    from opentao.testing import reinit_model

    return reinit_model(tiny_model_dir, tmp_path_factory.mktemp("other-llama"), seed=1, init_scale=0.2)


