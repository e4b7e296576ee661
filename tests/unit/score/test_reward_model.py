"""``reward_model``: a tiny random sequence-classification model built on the fly (no download)."""

from __future__ import annotations

import shutil

import pytest
import torch

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.registry import build_scorer


@pytest.fixture(scope="module")
def tiny_rm_dir(tmp_path_factory, bundled_tokenizer_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(bundled_tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    shutil.copytree(bundled_tokenizer_dir, out, dirs_exist_ok=True)
    return out


def _group(n: int) -> tuple[Prompt, list[Candidate]]:
    prompt = Prompt("p", [{"role": "user", "content": "Name a rock band."}])
    texts = ["AC/DC", "Queen, obviously, and many more bands from the seventies", "", "x " * 40][:n]
    return prompt, [Candidate("p", f"p#{i}", "plain", [], t, t, "") for i, t in enumerate(texts)]


def test_batched_scores_equal_unbatched(tiny_rm_dir):
    prompt, cands = _group(4)
    batched, _ = build_scorer({"type": "reward_model", "path": str(tiny_rm_dir), "batch_size": 4})
    single, _ = build_scorer({"type": "reward_model", "path": str(tiny_rm_dir), "batch_size": 1})
    a, b = batched.score_group(prompt, cands), single.score_group(prompt, cands)
    assert len(a) == 4 and all(isinstance(x, float) for x in a)
    assert a == pytest.approx(b, abs=1e-5)
    assert len(set(round(x, 6) for x in a)) > 1, "different responses should get different rewards"


def test_multi_label_head_uses_probability_of_chosen_label(tmp_path, bundled_tokenizer_dir):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(bundled_tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.eos_token_id,
                      id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path)
    shutil.copytree(bundled_tokenizer_dir, tmp_path, dirs_exist_ok=True)
    prompt, cands = _group(2)
    good, _ = build_scorer({"type": "reward_model", "path": str(tmp_path)})
    bad, _ = build_scorer({"type": "reward_model", "path": str(tmp_path), "label": "bad"})
    g, b = good.score_group(prompt, cands), bad.score_group(prompt, cands)
    assert all(0 <= x <= 1 for x in g) and [x + y for x, y in zip(g, b)] == pytest.approx([1.0, 1.0])
    with pytest.raises(TaoError, match="unknown label"):
        build_scorer({"type": "reward_model", "path": str(tmp_path), "label": "meh"})


def test_wrong_head_is_a_clear_error(tiny_model_dir):
    with pytest.raises(TaoError, match="LlamaForCausalLM head, not a sequence-classification head"):
        build_scorer({"type": "reward_model", "path": str(tiny_model_dir)})


def test_not_a_model_folder(tmp_path):
    with pytest.raises(TaoError, match="no config.json"):
        build_scorer({"type": "reward_model", "path": str(tmp_path)})
