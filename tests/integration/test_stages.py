"""Stages on a tiny random Llama: generation, resumability after a kill, training (rft and dpo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opentao.config import load_config
from opentao.generate.backend import GenRequest
from opentao.generate.hf import HFGenerator
from opentao.models import count_parameters, load_model
from opentao.records import Candidate, Prompt, TrainExample
from opentao.store import RunStore
from tests.helpers.files import write_jsonl

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def _prompts_file(tmp_path: Path, n: int) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "prompt": f"Question number {i}?"}
                                                    for i in range(n)])


def _config(tmp_path: Path, model: Path, run_dir: Path, prompts: Path, **extra) -> Path:
    lines = [f"run_dir: {run_dir}", f"model: {model}", f"prompts: {prompts}", "seed: 3",
             "generate:", "  k: 3", "  strategies: [plain, cot]", "  temperatures: [0.8, 1.2]",
             f"  max_new_tokens: {extra.get('max_new_tokens', 12)}",
             f"  batch_size: {extra.get('batch_size', 8)}", "  prompts_per_part: 1",
             "score:", "  scorers:", "    - {type: regex, pattern: 'a'}"]
    path = tmp_path / f"{run_dir.name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hf_generator_is_seeded_and_batched(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    gen = HFGenerator(model, tok, batch_size=2)
    reqs = [GenRequest([{"role": "user", "content": f"hi {i}"}], 1.0, 8, seed=5) for i in range(3)]
    a, b = gen.generate(reqs), gen.generate(reqs)
    assert [o.text for o in a] == [o.text for o in b]
    assert all(0 <= o.num_tokens <= 8 for o in a)
    greedy = gen.generate([GenRequest(reqs[0].messages, 0.0, 8)])
    assert len(greedy) == 1


def test_generate_stage_writes_candidates(tmp_path, tiny_model_dir):
    from opentao.pipeline import open_run, stage_generate

    run = tmp_path / "run"
    cfg = load_config(_config(tmp_path, tiny_model_dir, run, _prompts_file(tmp_path, 3)))
    store = open_run(cfg)
    stats = stage_generate(store, cfg, 1)
    assert stats["candidates"] == 9 and stats["parts"] == 3
    rows = store.read("candidates", 1)
    assert {r["strategy"] for r in rows} == {"plain", "cot"}
    cot = [Candidate.from_row(r) for r in rows if r["strategy"] == "cot"]
    assert all("Final answer" in c.source_messages[-1]["content"] for c in cot)
    assert (run / "config.yaml").is_file()
    # a re-run does nothing
    assert stage_generate(store, cfg, 1)["candidates"] == 0


def _table(store: RunStore, name: str) -> list[dict]:
    return sorted(store.read(name), key=lambda r: (r.get("candidate_id") or r["prompt_id"]))


def test_generate_killed_midway_resumes_to_identical_tables(tmp_path, tiny_model_dir):
    prompts = _prompts_file(tmp_path, 6)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # uninterrupted reference run
    ref_cfg = _config(tmp_path, tiny_model_dir, tmp_path / "ref", prompts, max_new_tokens=48, batch_size=1)
    subprocess.run([*TAO, "generate", "-c", str(ref_cfg)], check=True, env=env, capture_output=True)
    # run that is killed with SIGKILL after its first part lands, then resumed
    cfg = _config(tmp_path, tiny_model_dir, tmp_path / "killed", prompts, max_new_tokens=48, batch_size=1)
    proc = subprocess.Popen([*TAO, "generate", "-c", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    store = RunStore(tmp_path / "killed")
    deadline = time.time() + 120
    while not store.parts("candidates") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(store.parts("candidates"))
    assert 0 < done < 6, f"the kill should land mid-way (parts done: {done})"
    subprocess.run([*TAO, "generate", "-c", str(cfg)], check=True, env=env, capture_output=True)
    ref = RunStore(tmp_path / "ref")
    assert _table(store, "candidates") == _table(ref, "candidates")
    assert _table(store, "prompts") == _table(ref, "prompts")


@pytest.mark.parametrize("method", ["rft", "dpo"])
def test_train_merges_to_same_architecture(tmp_path, tiny_model_dir, method):
    from opentao.config import TrainConfig
    from opentao.train.trainer import train_model

    msgs = [{"role": "user", "content": "Say yes."}]
    kind = "sft" if method == "rft" else "dpo"
    examples = [TrainExample(f"p{i}", kind, msgs, "yes", "no way") for i in range(4)]
    cfg = TrainConfig(method=method, max_steps=2, batch_size=2, save_steps=1, lora_r=4, lora_alpha=8,
                      max_length=64)
    out = tmp_path / "model"
    stats = train_model(str(tiny_model_dir), examples, cfg, work_dir=tmp_path / "work", out_dir=out)
    assert stats["steps"] == 2 and stats["parameters"] == stats["base_parameters"]
    model, _ = load_model(str(out))
    base, _ = load_model(str(tiny_model_dir))
    assert count_parameters(model) == count_parameters(base)
    assert type(model).__name__ == type(base).__name__
    assert not any("lora" in n for n, _ in model.named_parameters())
    changed = any((a != b).any() for a, b in zip(model.parameters(), base.parameters()))
    assert changed, "training must change the weights"


def test_prompts_of_a_round_cannot_change(tmp_path, tiny_model_dir):
    from opentao.errors import TaoError
    from opentao.generate.stage import write_prompts

    store = RunStore(tmp_path / "run")
    write_prompts(store, [Prompt("a", [{"role": "user", "content": "x"}])], 1)
    with pytest.raises(TaoError, match="different prompt set"):
        write_prompts(store, [Prompt("b", [{"role": "user", "content": "y"}])], 1)


def test_shared_prefill_matches_plain_generation(tiny_model_dir):
    """K samples of one prompt prefill it once; in fp32 greedy output equals the unshared path exactly."""
    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    gen = HFGenerator(model, tok, batch_size=16)
    prompts = [[{"role": "user", "content": "short"}], [{"role": "user", "content": "a much longer prompt " * 5}]]
    shared = gen.generate([GenRequest(m, 0.0, 10) for m in prompts for _ in range(3)])  # duplicates → shared
    single = [gen.generate([GenRequest(m, 0.0, 10)])[0] for m in prompts]  # no duplicates → plain path
    assert [o.text for o in shared] == [single[0].text] * 3 + [single[1].text] * 3


def test_stop_strings_end_generation(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    gen = HFGenerator(model, tok)
    free = gen.generate([GenRequest([{"role": "user", "content": "x"}], 0.0, 30)])[0]
    assert free.num_tokens == 30 and len(free.text) > 4
    stop = free.text[len(free.text) // 2]  # a character the greedy output is known to contain by mid-way
    cut = gen.generate([GenRequest([{"role": "user", "content": "x"}], 0.0, 30, stop=(stop,))])[0]
    assert stop in cut.text and cut.num_tokens < free.num_tokens, (free.text, cut.text)


def test_compact_fused_head_on_cpu_matches_trl_default(tiny_model_dir):
    """Scoring only the labelled positions on CPU (our TRL switch) gives the same loss and gradients."""
    import torch
    import trl.trainer.utils as trl_utils
    from trl.trainer.utils import add_fused_lm_head

    from opentao.train.trainer import score_only_labelled_tokens_on_cpu

    torch.manual_seed(0)
    ids = torch.randint(0, 200, (2, 24))
    labels = ids.clone()
    labels[:, :18] = -100  # prompt tokens carry no loss, as with completion_only_loss

    def loss_and_grad():
        model, _ = load_model(str(tiny_model_dir), dtype="float32")
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), model.model.layers[0].self_attn.q_proj.weight.grad.clone()

    before = trl_utils._use_triton  # an earlier train_model call may have switched it already
    original = getattr(before, "_opentao_original", before)
    assert not original(torch.device("cpu"))
    trl_utils._use_triton = original
    try:
        full_loss, full_grad = loss_and_grad()
        assert score_only_labelled_tokens_on_cpu() and score_only_labelled_tokens_on_cpu()  # idempotent
        assert trl_utils._use_triton(torch.device("cpu"))
        compact_loss, compact_grad = loss_and_grad()
    finally:
        trl_utils._use_triton = before
    assert torch.allclose(full_loss, compact_loss, atol=1e-5)
    assert torch.allclose(full_grad, compact_grad, atol=1e-5)
