"""Training progress through a ``transformers.TrainerCallback``: loss, reward / advantage statistics, step time.

:func:`attach_progress` swaps the Trainer's own tqdm bar (or its dict printer, when tqdm is off) for
:class:`TrainProgress`, which drives :func:`opentao.progress.progress_bar` (a rich bar on a terminal, a line
every ~30 s in a log). What it shows of each logged entry is chosen by :func:`train_values`, a pure function:
the loss, the reward statistics the TRL trainers log (DPO's ``rewards/*``, GRPO's ``reward``, ``reward_std``,
``advantages...``) and the mean seconds per optimizer step.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from opentao.progress import progress_bar

SHOWN_REWARD_KEYS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "reward", "reward_std")


def train_values(logs: dict[str, Any], step_seconds: float | None) -> dict[str, Any]:
    """The values of one Trainer log entry worth a glance: loss, reward/advantage statistics, step time."""
    out: dict[str, Any] = {}
    if isinstance(logs.get("loss"), (int, float)):
        out["loss"] = round(float(logs["loss"]), 4)
    for key in (*SHOWN_REWARD_KEYS, *sorted(k for k in logs if "advantage" in k)):
        v = logs.get(key)
        if isinstance(v, (int, float)):
            out[key.replace("rewards/", "reward ")] = round(float(v), 4)
    if step_seconds is not None:
        out["s/step"] = round(step_seconds, 2)
    return out


class TrainProgress(TrainerCallback):
    """One progress bar over the optimizer steps of a ``Trainer.train()`` call."""

    def __init__(self, description: str = "train"):
        self.description = description
        self._stack: ExitStack | None = None
        self._advance = None
        self._t_first: float | None = None
        self._steps_timed = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not getattr(state, "is_world_process_zero", True):  # under accelerate launch: one bar, on the main process
            return
        self._stack = ExitStack()
        self._advance = self._stack.enter_context(
            progress_bar(self.description, total=max(int(state.max_steps or 0), 1), unit="steps"))
        if state.global_step:  # resumed from a checkpoint
            self._advance(state.global_step)
        self._t_first, self._steps_timed = time.monotonic(), 0

    def on_step_end(self, args, state, control, **kwargs):
        if self._advance is not None:
            self._steps_timed += 1
            self._advance(1)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._advance is None or not logs:
            return
        per_step = ((time.monotonic() - self._t_first) / self._steps_timed
                    if self._steps_timed and self._t_first is not None else None)
        self._advance.set(**train_values(logs, per_step))

    def on_train_end(self, args, state, control, **kwargs):
        if self._stack is not None:
            self._stack.close()
        self._stack = self._advance = None


def attach_progress(trainer, description: str = "train") -> TrainProgress:
    """Replace the Trainer's tqdm bar / dict printer with :class:`TrainProgress` (returned)."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    callback = TrainProgress(description)
    trainer.add_callback(callback)
    return callback
