"""``train.method: grpo`` — group-relative policy optimisation on the round's stored candidates.

GRPO (Shao et al. 2024, "DeepSeekMath", §4.1) replaces PPO's value model by the group: for K responses to one
prompt with rewards r_1..r_K the advantage of response i is ``A_i = (r_i - mean(r)) / (std(r) + 1e-4)``
(:func:`opentao.train.examples.group_advantages`; ``train.grpo.scale_rewards: false`` drops the division, as in
Dr. GRPO). Every token of response i shares ``A_i``. The loss is TRL 1.16's ``GRPOTrainer._compute_loss``,
restricted to what TAO needs::

    ratio_t   = exp(logp_t - old_logp_t)                                # per completion token
    pg_t      = -min(ratio_t * A, clip(ratio_t, 1 - eps, 1 + eps_high) * A)
    kl_t      = exp(ref_logp_t - logp_t) - (ref_logp_t - logp_t) - 1   # k3 estimator (Schulman 2020), >= 0
    loss_t    = pg_t + beta * kl_t
    "dapo":  sum over every completion token of the optimizer step's batch / number of those tokens
    "grpo":  mean over sequences of (sum over the sequence's tokens / its length)

How it fits TAO's stage boundary, and every simplification against TRL's online trainer:

* **Offline within the round.** The candidates were sampled by the generate stage and scored by the score stage;
  nothing is generated here. This is on-policy in TRL's sense only at the first step: the round's model sampled
  them, and ``old_logp`` (the model that sampled the round) is computed once, before the first update. Later
  steps are off-policy by the updates already taken, which the clipped ratio bounds (TRL's
  ``num_iterations > 1``, ``steps_per_generation > 1`` regime).
* **Plain prompt.** Log-probabilities are of the response under the *plain* prompt, at temperature 1 — not under
  the strategy prompt (system variant, chain-of-thought) or sampling temperature that produced it. Strategies
  only explore, as for ``rft`` (:mod:`opentao.train.examples`); the ratio is therefore against the round's model
  on the plain prompt, not the exact sampling distribution.
* **Reference = the round's model** (LoRA adapter disabled: ``with model.disable_adapter():``), so no second copy
  of the weights is held. With ``rounds > 1`` that is the previous round's merged model, which also sampled this
  round. Reference log-probabilities are computed once (the reference never changes); since a fresh LoRA adapter
  starts at zero (``lora_B = 0``), ``old_logp`` equals them and is not recomputed — then the KL term and
  ``ratio - 1`` are exactly zero at step 0.
* **Needs LoRA** when ``beta > 0`` (the reference is the adapter switched off). No entropy masking, no importance
  sampling correction for a vLLM sampler, no sequence-level ratios, no liger kernel.
* **No checkpoint resume**: a killed grpo training restarts the round's training (the run's tables are intact).
* **Several GPUs: DDP only** (``accelerate launch``, :mod:`opentao.train.distributed`). Model and optimizer go
  through ``accelerate.Accelerator.prepare``; every rank draws the same global batch and trains on its slice, the
  normalizer is the global one divided by the number of ranks (so DDP's averaged gradient is the one-process
  gradient of the global batch), and the reference pass is split between the ranks. DeepSpeed is refused.

Then, exactly as ``rft``/``dpo``: the adapter is merged, the model saved in bf16, and its parameter count checked
against the base (:func:`opentao.train.merge.publish_merged`).
"""

from __future__ import annotations

import logging
import math
import random
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from opentao.config import TrainConfig
from opentao.errors import TaoError
from opentao.models import count_parameters, load_model
from opentao.records import TrainExample
from opentao.tokens import completion_logits, encode_pair, pad_batch

log = logging.getLogger(__name__)

__all__ = ["Encoded", "encode_examples", "grpo_loss", "optimizer_steps", "sequence_logps", "train_grpo"]


@dataclass
class Encoded:
    """One tokenized example: plain prompt ids, response ids (the assistant turn as the chat template ends it)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float


def encode_examples(examples: list[TrainExample], tok, max_length: int) -> tuple[list[Encoded], int]:
    """Tokenize ``(plain prompt, response)`` (:func:`opentao.tokens.encode_pair`); ``(encoded, dropped)``: an
    example whose prompt alone leaves no room under ``max_length`` is dropped, a long response is cut."""
    out: list[Encoded] = []
    dropped = 0
    for e in examples:
        pair = encode_pair(tok, e.prompt_messages, e.chosen, max_length)
        if pair is None:
            dropped += 1
            continue
        out.append(Encoded(pair[0], pair[1], float(e.advantage)))
    return out, dropped


def optimizer_steps(n_examples: int, cfg: TrainConfig, world: int = 1) -> int:
    """Optimizer steps of a grpo training on ``n_examples`` encoded examples: ``train.max_steps`` when > 0, else
    ``ceil(epochs * ceil(n / (batch_size * grad_accum * world)))``, at least 1 (``world``: the DDP ranks). Every
    step is ``grad_accum`` micro-batches of ``batch_size`` examples per rank (a batch is refilled from a fresh
    shuffled epoch, so it is never short)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    steps_per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum * world))
    return max(1, math.ceil(cfg.epochs * steps_per_epoch))


def _batch(items: list[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """:func:`opentao.tokens.pad_batch` plus ``advantages`` (B,)."""
    batch = pad_batch([(x.prompt_ids, x.completion_ids) for x in items], pad_id, device)
    batch["advantages"] = torch.tensor([x.advantage for x in items], device=device, dtype=torch.float32)
    return batch


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-token log-probabilities of the completion tokens, (B, C)."""
    from trl.trainer.utils import selective_log_softmax

    C = batch["completion_mask"].size(1)
    return selective_log_softmax(completion_logits(model, batch), batch["input_ids"][:, -C:])  # (B, C)


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, *, epsilon: float, epsilon_high: float, beta: float, loss_type: str,
              normalizer: float) -> tuple[torch.Tensor, dict[str, float]]:
    """TRL 1.16's clipped GRPO objective (module doc). ``logps``/``old``/``ref``/``mask``: (B, C); ``advantages``:
    (B,). ``normalizer``: the completion tokens of the whole optimizer step (``dapo``) or its sequences (``grpo``).
    Returns ``(loss, stats)`` with the masked means of the KL and of the clipped share."""
    adv = advantages.unsqueeze(1)  # (B, 1), broadcast over tokens
    ratio = torch.exp(logps - old_logps)  # (B, C)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (B, C)
    delta = ref_logps - logps
    kl = torch.exp(delta) - delta - 1  # (B, C), k3 >= 0
    if beta:
        per_token = per_token + beta * kl
    if loss_type == "dapo":
        loss = (per_token * mask).sum() / normalizer
    elif loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / normalizer
    else:
        raise TaoError(f"unknown train.grpo.loss_type {loss_type!r}: use dapo or grpo")
    n = mask.sum().clamp(min=1.0)
    is_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
    stats = {"kl": float((kl.detach() * mask).sum() / n), "clip": float((is_clipped.float() * mask).sum() / n)}
    return loss, stats


@torch.no_grad()
def _all_logps(model, items: list[Encoded], bs: int, pad_id: int, device, adapter_off: bool) -> list[torch.Tensor]:
    """Per-example completion log-probabilities (each (C_i,)), without gradients; adapter off when asked."""
    out: list[torch.Tensor] = []
    model.eval()
    with model.disable_adapter() if adapter_off else nullcontext():
        for i in range(0, len(items), bs):
            chunk = items[i:i + bs]
            lp = sequence_logps(model, _batch(chunk, pad_id, device))
            out.extend(lp[j, : len(x.completion_ids)].cpu() for j, x in enumerate(chunk))
    return out


def _pad_rows(rows: list[torch.Tensor], C: int, device) -> torch.Tensor:
    out = torch.zeros(len(rows), C, device=device)
    for j, r in enumerate(rows):
        out[j, : len(r)] = r.to(device)
    return out  # (B, C)


def _adapter_is_zero(model) -> bool:
    return all(float(p.detach().abs().max()) == 0.0 for n, p in model.named_parameters() if "lora_B" in n)


def draw_micro(order: list[int], rng: random.Random, n_items: int, bs: int, world: int = 1) -> list[int]:
    """The example indices of one global micro-batch (``bs`` per rank, ``bs × world`` in all), popped off ``order``
    (the shuffled epochs, refilled from ``rng``). Every rank draws the same list from the same seed and trains on
    its slice ``[rank::world]``; a tiny set is repeated so that every rank gets at least one example."""
    need = bs * world
    if len(order) < need:
        order.extend(rng.sample(range(n_items), n_items))  # a fresh shuffled epoch
    while len(order) < world:
        order.extend(rng.sample(range(n_items), n_items))
    return [order.pop(0) for _ in range(min(need, len(order)))]


def _shard_logps(model, items: list[Encoded], bs: int, pad_id: int, device, adapter_off: bool, acc) -> list:
    """:func:`_all_logps` of every item, each rank computing a contiguous share and all of them gathered in order
    (one process: all of it, as before)."""
    from accelerate.utils import gather_object

    n, world, rank = len(items), acc.num_processes, acc.process_index
    lo, hi = n * rank // world, n * (rank + 1) // world
    mine = _all_logps(model, items[lo:hi], bs, pad_id, device, adapter_off)
    return mine if world == 1 else gather_object(mine)


def train_grpo(base_model: str, examples: list[TrainExample], cfg: TrainConfig, *, work_dir: Path, out_dir: Path,
               dtype: str = "auto", device: str = "auto") -> dict:
    """Train on GRPO examples (one per sampled response, each with its advantage) and publish the merged model.

    Under ``accelerate launch`` (DDP) each rank holds the model on its own device, the reference pass is split
    between the ranks, and every optimizer step's global batch (``batch_size × grad_accum`` per rank) is drawn
    identically on every rank, each training on its slice; the loss normalizer is the global one divided by the
    number of ranks, so DDP's gradient average equals the one-process gradient of the whole batch. One process
    runs exactly the loop it always did.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup

    from opentao.train import distributed
    from opentao.train.merge import publish_on_main

    g = cfg.grpo
    if g.beta > 0 and not cfg.lora:
        raise TaoError("train.method grpo: the KL reference is the model with its LoRA adapter off; set "
                       "train.lora: true, or train.grpo.beta: 0 for no KL term")
    distributed.check_launch("grpo")
    eps_high = g.epsilon_high if g.epsilon_high is not None else g.epsilon
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model, tok = load_model(base_model, dtype=dtype, device=str(distributed.train_device(device)))
    base_params = count_parameters(model)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    items, dropped = encode_examples(examples, tok, cfg.max_length)
    if not items:
        raise TaoError(f"no grpo example fits train.max_length={cfg.max_length}")
    if cfg.lora:
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        for p in model.parameters():  # trainable LoRA weights in fp32; the frozen base keeps its dtype
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    dev = next(model.parameters()).device
    # precision is opentao's dtype, never autocast: a Trainer earlier in this process may have set its own, as
    # TrainingArguments itself resets the state before building its Accelerator
    AcceleratorState._reset_state()
    acc = Accelerator(mixed_precision="no", device_placement=False)  # the model is already on this rank's device
    world, rank, main = acc.num_processes, acc.process_index, acc.is_main_process
    bs = cfg.batch_size
    # the reference and the model that sampled the round: computed once, before the first update
    ref = _shard_logps(model, items, bs, pad_id, dev, cfg.lora, acc)
    old = ref if (not cfg.lora or _adapter_is_zero(model)) else _shard_logps(model, items, bs, pad_id, dev, False,
                                                                              acc)

    total = optimizer_steps(len(items), cfg, world)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(2, total - 1), num_training_steps=total)
    model, opt = acc.prepare(model, opt)  # DDP (gradient all-reduce) under a launcher; as they were alone
    order: list[int] = []
    history: list[dict[str, float]] = []
    model.train()
    for step in range(total):
        micro = [draw_micro(order, rng, len(items), bs, world) for _ in range(cfg.grad_accum)]  # global
        norm = (float(sum(len(items[i].completion_ids) for idx in micro for i in idx)) if g.loss_type == "dapo"
                else float(sum(len(idx) for idx in micro)))
        normalizer = max(norm, 1.0) / world  # DDP averages the ranks' gradients: undo the 1/world
        batches = [(_batch([items[i] for i in idx[rank::world]], pad_id, dev), idx[rank::world]) for idx in micro]
        opt.zero_grad(set_to_none=True)
        loss_sum, kls, clips = 0.0, [], []
        for m, (batch, idx) in enumerate(batches):
            C = batch["completion_mask"].size(1)
            with acc.no_sync(model) if m < len(batches) - 1 else nullcontext():  # all-reduce once per step
                logps = sequence_logps(model, batch)  # (B, C)
                loss, st = grpo_loss(logps, _pad_rows([old[i] for i in idx], C, dev),
                                     _pad_rows([ref[i] for i in idx], C, dev), batch["advantages"],
                                     batch["completion_mask"], epsilon=g.epsilon, epsilon_high=eps_high,
                                     beta=g.beta, loss_type=g.loss_type, normalizer=normalizer)
                acc.backward(loss)
            loss_sum += float(loss.detach())
            kls.append(st["kl"])
            clips.append(st["clip"])
        grad_norm = float(acc.clip_grad_norm_(params, g.max_grad_norm))
        opt.step()
        sched.step()
        kl, clip = sum(kls) / len(kls), sum(clips) / len(clips)
        if world > 1:  # the whole batch's loss is the mean of the ranks' (each normalized by the global count / N)
            t = acc.reduce(torch.tensor([loss_sum, kl, clip], dtype=torch.float64, device=acc.device), "mean")
            loss_sum, kl, clip = (float(x) for x in t)
        history.append({"step": step + 1, "loss": loss_sum, "kl": kl, "clip_ratio": clip, "grad_norm": grad_norm})
        if main:
            log.info("grpo step %d/%d: loss %.4f kl %.5f clip %.3f", step + 1, total, loss_sum, kl, clip)
    model.eval()
    tuned_params = publish_on_main(acc.unwrap_model(model), tok, base_params, out_dir, lora=cfg.lora)
    losses = [h["loss"] for h in history]
    return {
        "examples": len(examples), "encoded": len(items), "dropped_too_long": dropped,
        "prompts": len({e.prompt_id for e in examples}), "steps": total,
        "train_loss": sum(losses) / len(losses), "first_loss": losses[0], "last_loss": losses[-1],
        "first_kl": history[0]["kl"], "last_kl": history[-1]["kl"],
        "log_history": history,  # every step (loss, kl, clip_ratio, grad_norm): the report's training curves
        "parameters": tuned_params, "base_parameters": base_params, "resumed_from": None,
    }
