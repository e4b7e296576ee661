"""Stage 3 — Train: update the model toward high scorers with TRL + PEFT, then merge to a plain HF folder.

- ``rft`` → ``trl.SFTTrainer`` on (plain prompt → chosen response), loss on the completion only.
- ``dpo`` → ``trl.DPOTrainer`` on (plain prompt, chosen, rejected); with LoRA the reference model is the
  base with the adapter switched off, so no second copy of the weights is held.
- ``grpo`` → :func:`opentao.train.grpo.train_grpo` (TRL's GRPO loss on the round's stored candidates).

The method comes from ``cfg.method``; the examples' ``kind`` must fit it (:data:`KINDS`).

Simplifications: one LoRA adapter on every linear layer; the base is held in the dtype ``auto`` picks
(:func:`opentao.models.pick_dtype`: bf16 on a GPU or a CPU with native bf16, else fp32), TRL's autocast follows
that dtype (:func:`precision_args`), and the LoRA weights are fp32. The adapter is merged back and the model
saved in bf16, so the tuned model has exactly the base's architecture and parameter count — inference cost is
unchanged — and this is checked before the folder is published. Checkpoints are saved every ``save_steps`` steps, so a killed
run resumes from the last one.

Under ``accelerate launch`` (DDP or DeepSpeed ZeRO-2) the TRL trainers shard the data and reduce the gradients
themselves; each rank loads the base on its own device, and only the main process merges and publishes the
folder while the others wait (:mod:`opentao.train.distributed`). ``train.max_steps`` counts optimizer steps, each
of ``batch_size × grad_accum × processes`` examples.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from opentao.config import TrainConfig
from opentao.errors import TaoError
from opentao.models import count_parameters, load_model
from opentao.records import TrainExample
from opentao.train import distributed
from opentao.train.merge import publish_on_main
from opentao.train.progress import attach_progress

log = logging.getLogger(__name__)

KINDS = {"rft": {"rft", "sft"}, "dpo": {"dpo"}, "grpo": {"grpo"}}  # method → example kinds it trains on


def check_kinds(examples: list[TrainExample], method: str) -> None:
    """TaoError unless every example was built for ``method`` (e.g. a stored table from another config)."""
    kinds = {e.kind for e in examples}
    if not kinds <= KINDS.get(method, set()):
        raise TaoError(f"train.method is {method!r} but the training examples are of kind {', '.join(sorted(kinds))} "
                       f"(built for another method): delete the round's train_examples table or set train.method")


def _datasets(examples: list[TrainExample], method: str):
    from datasets import Dataset

    if method == "rft":
        rows = [{"prompt": e.prompt_messages, "completion": [{"role": "assistant", "content": e.chosen}]}
                for e in examples]
    else:
        rows = [
            {
                "prompt": e.prompt_messages,
                "chosen": [{"role": "assistant", "content": e.chosen}],
                "rejected": [{"role": "assistant", "content": e.rejected}],
            }
            for e in examples
        ]
    return Dataset.from_list(rows)


def score_only_labelled_tokens_on_cpu() -> bool:
    """Make TRL's fused LM head project only the labelled (completion) positions on CPU too.

    TRL 1.16's ``fused_lm_head`` scores only positions whose label is not -100 on Triton devices; elsewhere it
    scores every position (static tile shapes for compilers such as Neuron) and masks afterwards, which on CPU
    with long prompts and short answers is most of a LoRA step (the measurement is in docs/notes.md). The
    switch lives in ``trl.trainer.utils._use_triton``; the kernel itself keeps its own check, so on CPU it still
    runs its plain-torch tiles. Returns False (and changes nothing) if this TRL version has no such switch.
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:  # pragma: no cover - TRL is a hard dependency
        return False
    current = getattr(trl_utils, "_use_triton", None)
    if current is None:
        return False
    if getattr(current, "_opentao_compact_cpu", False):
        return True

    def use_compact(device: torch.device) -> bool:
        return device.type == "cpu" or current(device)

    use_compact._opentao_compact_cpu = True  # type: ignore[attr-defined]
    use_compact._opentao_original = current  # type: ignore[attr-defined]
    trl_utils._use_triton = use_compact
    return True


def _last_checkpoint(out: Path) -> str | None:
    """The newest *complete* checkpoint under ``out``; torn ones are removed.

    The HF Trainer writes a checkpoint's files in place and ``trainer_state.json`` last (then deletes older
    checkpoints), so a process killed while saving leaves a newest ``checkpoint-N`` without a readable state file:
    resuming from it would fail. Such a folder is deleted and the previous checkpoint (still there) is used."""
    import json
    import shutil

    ckpts = sorted((p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(ckpts):
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return str(ckpt)
        except (OSError, ValueError):
            log.warning("checkpoint %s is incomplete (killed while saving?): removing it", ckpt)
            shutil.rmtree(ckpt, ignore_errors=True)
    return None


def precision_args(model) -> dict:
    """TRL's configs default to ``bf16=True``, which on CPU wraps every forward in ``torch.autocast(bfloat16)``:
    the matmuls then run in bf16 whatever the weights' dtype. Autocast only when the model itself is held in bf16
    (:func:`opentao.models.pick_dtype` chose it, the hardware has it); an fp32 model computes in fp32, which on a
    CPU without native bf16 avoids PyTorch's slow generic bf16 GEMM (docs/notes.md)."""
    return {"bf16": model.dtype == torch.bfloat16, "fp16": False}


def train_model(
    base_model: str,
    examples: list[TrainExample],
    cfg: TrainConfig,
    *,
    work_dir: Path,
    out_dir: Path,
    dtype: str = "auto",
    device: str = "auto",
) -> dict:
    """Train on ``examples`` and publish a merged model folder at ``out_dir`` (atomic rename)."""
    if not examples:
        raise TaoError("no training examples: every candidate scored below the threshold (lower train.threshold, "
                       "raise generate.k, or check the scorers)")
    check_kinds(examples, cfg.method)
    distributed.check_launch(cfg.method)
    if cfg.method == "grpo":
        from opentao.train.grpo import train_grpo

        return train_grpo(base_model, examples, cfg, work_dir=work_dir, out_dir=out_dir, dtype=dtype, device=device)
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    score_only_labelled_tokens_on_cpu()

    model, tok = load_model(base_model, dtype=dtype, device=str(distributed.train_device(device)))
    base_params = count_parameters(model)
    tok.padding_side = "right"
    common = dict(
        output_dir=str(work_dir),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=cfg.max_length,
        logging_steps=1,  # every step: first → last loss is then a real trend even on a short run
        save_steps=cfg.save_steps,
        save_total_limit=1,
        report_to="none",
        seed=cfg.seed,
        lr_scheduler_type="cosine",
        warmup_steps=2,
        use_cpu=model.device.type == "cpu",
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # TRL turns it on by default; a 135M model needs no memory saving
        ddp_find_unused_parameters=False,  # under DDP: every LoRA (or full) weight is used in every forward
        **precision_args(model),
    )
    peft_config = (
        LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                   target_modules="all-linear", task_type="CAUSAL_LM")
        if cfg.lora
        else None
    )
    dataset = _datasets(examples, cfg.method)
    if cfg.method == "rft":
        args = SFTConfig(completion_only_loss=True, **common)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                             peft_config=peft_config)
    else:
        args = DPOConfig(beta=cfg.beta, **common)
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                             peft_config=peft_config)
    for p in trainer.model.parameters():  # trainable LoRA weights in fp32; the frozen base keeps its dtype
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    attach_progress(trainer, f"train {out_dir.name}")
    with distributed.main_first():  # the main process removes a torn checkpoint before the others look
        resume = _last_checkpoint(work_dir)
    if resume:
        log.info("resuming training from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    tuned_params = publish_on_main(trainer.model, tok, base_params, out_dir, lora=cfg.lora)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "examples": len(examples),
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "parameters": tuned_params,
        "base_parameters": base_params,
        "resumed_from": resume,
        "log_history": trainer.state.log_history,  # every logged step: the report's training curves
    }
