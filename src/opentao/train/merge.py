"""Publishing a tuned model: the LoRA adapter merged back, bf16, the base's parameter count checked, atomic save.

Under ``accelerate launch`` only the main process publishes (:func:`publish_on_main`); the others wait for it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from opentao.errors import TaoError
from opentao.models import count_parameters

log = logging.getLogger(__name__)


def publish_merged(model, tok, base_params: int, out_dir: Path, *, lora: bool) -> int:
    """Merge the LoRA adapter (when ``lora``), cast to bf16, check the parameter count equals the base's, and save
    the model and tokenizer (left padding, for generation) to ``out_dir`` by atomic rename. Returns the count."""
    tuned = model.merge_and_unload() if lora else model
    tuned = tuned.to(torch.bfloat16)
    tuned_params = count_parameters(tuned)
    if tuned_params != base_params:
        raise TaoError(f"tuned model has {tuned_params:,} parameters but the base has {base_params:,}")
    log.info("tuned model: %s parameters, same architecture as the base (%s)", f"{tuned_params:,}",
             type(tuned).__name__)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tuned.save_pretrained(tmp)
    tok.padding_side = "left"
    tok.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return tuned_params


def publish_on_main(model, tok, base_params: int, out_dir: Path, *, lora: bool) -> int:
    """:func:`publish_merged` on the main process only (``model`` unwrapped: the module itself, not its DDP
    wrapper); every rank then waits until the folder is in place and returns the (same) parameter count."""
    from opentao.train import distributed

    tuned_params = base_params
    if distributed.is_main_process():
        tuned_params = publish_merged(model, tok, base_params, out_dir, lora=lora)
    distributed.barrier()
    return tuned_params
