"""Training under ``accelerate launch``: which process writes, where each rank's model lives, what is refused.

``tao train`` runs unchanged as one process; under ``accelerate launch`` (Hugging Face Accelerate 1.x, one process
per GPU: DDP, or DeepSpeed ZeRO-2 for ``rft``/``dpo``) every rank runs the same command, and the contract is:

* **Every rank trains.** TRL's ``SFTTrainer``/``DPOTrainer`` are Accelerate-aware (sharded data, gradient
  all-reduce, checkpoints saved by the main process); the GRPO loop (:mod:`opentao.train.grpo`) prepares its model
  and optimizer with ``accelerate.Accelerator`` and gives each rank its slice of every global batch.
* **Only the main process writes the run directory** (``PartialState().is_main_process``): the round's
  ``train_examples`` table and selection summary, the merged ``models/round-<r>/`` folder and
  ``summary/train-r<r>.json``. The other ranks wait at a barrier (:func:`main_first`, :func:`barrier`) and read
  what it wrote, so every rank returns the same statistics and no two processes race on one path.
* **One process is the plain case.** With a single process (no launcher, or ``--num_processes 1``) nothing here
  changes what runs: the same device choice, the same seeds, the same losses.

Refused with a :class:`~opentao.errors.TaoError` before any model is loaded (:func:`check_launch`): a DeepSpeed
launch without the ``deepspeed`` package, and ``train.method: grpo`` under DeepSpeed (its hand-written loop is
DDP-only). ZeRO-3 is not supported: merging the LoRA adapter on the main process needs its full weights, which
ZeRO-2 keeps on every rank (it shards only optimizer state and gradients).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentao.errors import TaoError

CONFIGS = ("ddp.yaml", "deepspeed_zero2.yaml", "cpu.yaml")  # shipped in opentao/configs/accelerate/


def config_dir():
    """The folder of the shipped ``accelerate launch --config_file`` files (:data:`CONFIGS`)."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def deepspeed_launch() -> bool:
    """Whether this process was started by ``accelerate launch`` with a DeepSpeed config."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes")


def deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def check_launch(method: str) -> None:
    """TaoError for launches this training cannot run (module doc); nothing at all for a plain process."""
    if not deepspeed_launch():
        return
    if not deepspeed_installed():
        raise TaoError("this accelerate config uses DeepSpeed, which is not installed: pip install deepspeed "
                       "(needs a CUDA toolkit), or launch with configs/accelerate/ddp.yaml")
    if method == "grpo":
        raise TaoError("train.method grpo runs under DDP only, not DeepSpeed: launch it with "
                       "configs/accelerate/ddp.yaml (rft and dpo run under either)")


def state():
    """Accelerate's process state (a singleton: one process and no launcher gives ``DistributedType.NO``)."""
    from accelerate import PartialState

    return PartialState()


def num_processes() -> int:
    return state().num_processes


def is_main_process() -> bool:
    return state().is_main_process


def barrier() -> None:
    """Every rank waits here for the others (nothing with one process)."""
    state().wait_for_everyone()


@contextmanager
def main_first() -> Iterator[bool]:
    """Run the block on the main process first, then on the others (yields whether this is the main process):
    what the main process writes in it, the others read. If the main process raises, the launcher (torchrun)
    ends the other ranks."""
    st = state()
    if not st.is_main_process:
        st.wait_for_everyone()
    yield st.is_main_process
    if st.is_main_process:
        st.wait_for_everyone()


def train_device(device: str):
    """The device a rank trains on: ``device`` as :func:`opentao.models.pick_device` reads it, except that with
    several processes ``auto`` means this rank's own accelerator (``cuda:<local rank>``), not the first one."""
    from opentao.models import pick_device

    if device == "auto" and num_processes() > 1:
        return state().device
    return pick_device(device)
