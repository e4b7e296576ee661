"""GRPO: group-relative advantages, the TRL loss on hand-made tensors, and real steps on the tiny random model."""

from __future__ import annotations

import pytest
import torch

from opentao.config import GrpoConfig, TrainConfig
from opentao.errors import TaoError
from opentao.models import count_parameters, load_model
from opentao.records import Candidate, Prompt, TrainExample
from opentao.train.examples import build_examples, group_advantages
from opentao.train.grpo import _batch, encode_examples, grpo_loss, optimizer_steps, sequence_logps, train_grpo
from opentao.train.trainer import check_kinds

MSGS = [{"role": "user", "content": "Say yes."}]


def test_advantages_hand_computed():
    # rewards 1, 0, 0, 1: mean 0.5, sample std sqrt(1/3) = 0.57735
    a = 0.5 / (0.577350269 + 1e-4)
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == pytest.approx([a, -a, -a, a], rel=1e-6)
    assert group_advantages([2.0, 1.0, 0.0], scale=False) == pytest.approx([1.0, 0.0, -1.0])
    assert group_advantages([0.7, 0.7, 0.7]) is None  # zero variance: no signal
    assert group_advantages([1.0]) is None


def test_optimizer_steps_of_one_epoch_and_of_max_steps():
    # 56 examples, batches of 8: 7 steps; of 3 x 2 micro-batches: ceil(56 / 6) = 10; 1.5 epochs of 7 -> 11
    assert optimizer_steps(56, TrainConfig(batch_size=8, epochs=1)) == 7
    assert optimizer_steps(57, TrainConfig(batch_size=8, epochs=1)) == 8
    assert optimizer_steps(56, TrainConfig(batch_size=3, grad_accum=2, epochs=1)) == 10
    assert optimizer_steps(56, TrainConfig(batch_size=8, epochs=1.5)) == 11
    assert optimizer_steps(56, TrainConfig(batch_size=8, max_steps=3)) == 3
    assert optimizer_steps(1, TrainConfig(batch_size=8, epochs=0.1)) == 1


def _cand(pid: str, i: int, response: str) -> Candidate:
    return Candidate(pid, f"{pid}#{i}", "plain", [], response, response, "")


def test_grpo_examples_use_every_sample_and_drop_flat_groups():
    prompts = {p: Prompt(p, [{"role": "user", "content": p}]) for p in ("a", "b")}
    cands = [_cand("a", 0, "x"), _cand("a", 1, "y"), _cand("a", 2, "x"), _cand("a", 3, ""),
             _cand("b", 0, "u"), _cand("b", 1, "v")]
    rewards = {"a#0": 1.0, "a#1": 0.0, "a#2": 1.0, "a#3": 1.0, "b#0": 0.5, "b#1": 0.5}
    ex = build_examples(prompts, cands, rewards, method="grpo", scale_rewards=False)
    assert [(e.chosen_id, e.kind) for e in ex] == [("a#0", "grpo"), ("a#1", "grpo"), ("a#2", "grpo")]  # b is flat
    assert [e.advantage for e in ex] == pytest.approx([1 / 3, -2 / 3, 1 / 3])  # the empty response is skipped
    assert all(e.prompt_messages == [{"role": "user", "content": "a"}] for e in ex)  # the plain prompt


def test_rft_examples_say_rft_and_kinds_are_checked():
    prompts = {"p": Prompt("p", MSGS)}
    ex = build_examples(prompts, [_cand("p", 0, "yes")], {"p#0": 1.0}, method="rft")
    assert ex[0].kind == "rft"
    check_kinds(ex, "rft")
    check_kinds([TrainExample("p", "sft", MSGS, "yes")], "rft")  # gold outputs train with rft too
    with pytest.raises(TaoError, match="kind rft"):
        check_kinds(ex, "grpo")


def test_loss_matches_trl_formula_by_hand():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    old = torch.tensor([[-1.2, -2.0], [-0.5, -2.0]])
    ref = old.clone()
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, st = grpo_loss(logps, old, ref, adv, mask, epsilon=0.2, epsilon_high=0.2, beta=0.0, loss_type="dapo",
                         normalizer=3.0)
    r00 = torch.exp(torch.tensor(0.2)).item()  # 1.2214 > 1.2: clipped for a positive advantage
    expected = (-min(r00 * 1, 1.2 * 1) + -1.0 + -min(1.0 * -1, 1.0 * -1)) / 3
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert st["clip"] == pytest.approx(1 / 3)
    zero, st0 = grpo_loss(old, old, ref, adv, mask, epsilon=0.2, epsilon_high=0.2, beta=0.1, loss_type="grpo",
                          normalizer=2.0)
    assert st0["kl"] == 0.0  # policy == reference
    assert float(zero) == pytest.approx((-(1.0 + 1.0) / 2 + 1.0) / 2)  # seq means -1 and +1 → 0; ratio 1


def test_grpo_needs_lora_for_its_reference(tmp_path, tiny_model_dir):
    ex = [TrainExample("p", "grpo", MSGS, "yes", advantage=1.0)]
    cfg = TrainConfig(method="grpo", lora=False)
    with pytest.raises(TaoError, match="LoRA"):
        train_grpo(str(tiny_model_dir), ex, cfg, work_dir=tmp_path / "w", out_dir=tmp_path / "m")


def _logp(model, tok, response: str) -> float:
    ex = TrainExample("p", "grpo", MSGS, response)
    items, _ = encode_examples([ex], tok, 64)
    with torch.no_grad():
        return float(sequence_logps(model, _batch(items, tok.pad_token_id or 0, model.device)).sum())


def test_grpo_steps_move_logprobs_by_the_sign_of_the_advantage(tmp_path, tiny_model_dir):
    examples = [TrainExample("p", "grpo", MSGS, "yes", chosen_id="p#0", advantage=1.0),
                TrainExample("p", "grpo", MSGS, "no thanks", chosen_id="p#1", advantage=-1.0)]
    cfg = TrainConfig(method="grpo", max_steps=4, batch_size=2, learning_rate=5e-3, lora_r=4, lora_alpha=8,
                      max_length=64, seed=0, grpo=GrpoConfig(beta=0.04))
    base, tok = load_model(str(tiny_model_dir), dtype="fp32")
    before = {r: _logp(base, tok, r) for r in ("yes", "no thanks")}
    out = tmp_path / "model"
    stats = train_grpo(str(tiny_model_dir), examples, cfg, work_dir=tmp_path / "work", out_dir=out, dtype="fp32")
    assert stats["steps"] == 4 and stats["log_history"][0]["kl"] == pytest.approx(0.0, abs=1e-6)  # KL 0 at step 0
    assert stats["last_kl"] > 0  # the policy has moved off the reference
    tuned, _ = load_model(str(out), dtype="fp32")
    after = {r: _logp(tuned, tok, r) for r in ("yes", "no thanks")}
    assert after["yes"] > before["yes"]
    assert after["no thanks"] < before["no thanks"]
    assert count_parameters(tuned) == count_parameters(base) == stats["base_parameters"]
    assert not any("lora" in n for n, _ in tuned.named_parameters())


def test_grpo_round_through_the_train_stage_and_next_round_samples_from_it(tmp_path, tiny_model_dir):
    from opentao.config import RunConfig
    from opentao.pipeline import model_for_round
    from opentao.store import RunStore
    from opentao.train.stage import run_train
    from tests.helpers.runs import hand_made_run as _hand_made_run

    run = tmp_path / "run"
    _hand_made_run(run, n=2)
    store = RunStore(run)
    cfg = RunConfig(run_dir=str(run), model=str(tiny_model_dir), train=TrainConfig(
        method="grpo", max_steps=1, batch_size=4, lora_r=4, lora_alpha=8, max_length=64))
    stats = run_train(store, cfg.train, model_for_round(store, cfg, 1), round_=1, dtype="fp32")
    ex = store.read("train_examples", 1)
    assert stats["method"] == "grpo" and len(ex) == 8 and {e["kind"] for e in ex} == {"grpo"}  # all K per group
    assert sum(e["advantage"] for e in ex) == pytest.approx(0.0, abs=1e-9)  # group-relative: sums to 0
    assert model_for_round(store, cfg, 2) == str(store.model_dir(1))  # round 2 samples from round 1's model
