"""Stage 3 driver: scored candidates → ``train_examples`` table → tuned model folder ``models/round-<r>``.

Under ``accelerate launch`` every rank runs :func:`run_train`; only the main process writes the table, the model
folder and the summary, and the others read them after a barrier (:mod:`opentao.train.distributed`)."""

from __future__ import annotations

import logging

from opentao.config import TrainConfig
from opentao.errors import TaoError
from opentao.records import Candidate, Prompt, TrainExample
from opentao.store import RunStore
from opentao.train.examples import build_examples
from opentao.train.select import balance_classes, band_prompts

log = logging.getLogger(__name__)


def examples_for_round(store: RunStore, cfg: TrainConfig, round_: int,
                       band: tuple[float, float] | None = None) -> list[TrainExample]:
    """Build (once) and return the round's training examples; the table is the record of what was trained on.

    ``band`` (``score.band``) keeps only prompts inside the consensus band, and ``cfg.balance_classes`` caps the
    categorical answers' shares (:mod:`opentao.train.select`); what they dropped goes to
    ``summary/select-r<N>.json``.
    """
    key = f"r{round_}"
    if store.has_part("train_examples", key):
        return [TrainExample.from_row(r) for r in store.read("train_examples", round_)]
    prompts = {r["prompt_id"]: Prompt.from_row(r) for r in store.read("prompts", round_)}
    candidates = [Candidate.from_row(r) for r in store.read("candidates", round_)]
    rewards = {
        r["candidate_id"]: r["score"]
        for r in store.read("scores", round_)
        if r["scorer"] == "combined"
    }
    if not rewards:
        raise TaoError(f"no scores for round {round_} in {store.root}: run 'tao score' first")
    selection: dict = {}
    pool = candidates
    if band is not None:
        inside = band_prompts(candidates, band[0], band[1])
        pool = [c for c in candidates if c.prompt_id in inside]
        selection["band"] = {"band": list(band), "prompts": len({c.prompt_id for c in candidates}),
                             "inside": len(inside)}
    examples = build_examples(
        prompts, pool, rewards, method=cfg.method, threshold=cfg.threshold, min_margin=cfg.min_margin,
        max_per_prompt=cfg.max_per_prompt, round_=round_, scale_rewards=cfg.grpo.scale_rewards,
    )
    if cfg.balance_classes and cfg.method == "rft":  # dpo pairs and grpo groups are not single answers
        examples, selection["balance"] = balance_classes(examples, candidates, cfg.class_slack, cfg.class_target)
    if selection:
        store.write_summary(f"select-r{round_}", {**selection, "examples": len(examples)})
    if not examples:
        if cfg.method == "grpo":
            raise TaoError("no training examples: every group's rewards are all equal, so no group-relative "
                           "advantage is non-zero (raise generate.k, or use scorers that separate candidates)")
        raise TaoError("no training examples: every candidate scored below the threshold (lower train.threshold, "
                       "raise generate.k, or check the scorers)")
    store.write_part("train_examples", key, examples, TrainExample.SCHEMA)
    return examples


def release_memory() -> None:
    """Hand the trainer's freed memory back to the OS: collect its garbage, and on glibc trim the malloc arenas that
    hold the freed activations (otherwise they stay in this process's RSS, and a vLLM engine started next finds its
    memory node short)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def run_train(store: RunStore, cfg: TrainConfig, base_model: str, *, round_: int = 0, dtype: str = "auto",
              device: str = "auto", band: tuple[float, float] | None = None) -> dict:
    out = store.model_dir(round_)
    done = store.read_summary(f"train-r{round_}")
    if (out / "config.json").is_file() and done:
        log.info("train: %s already exists, skipping", out)
        return {**done, "skipped": True}
    from opentao.train import distributed
    from opentao.train.trainer import train_model

    distributed.check_launch(cfg.method)
    with distributed.main_first():  # the main process builds and writes the table; the others then read it
        examples = examples_for_round(store, cfg, round_, band=band)
    stats = train_model(base_model, examples, cfg, work_dir=store.root / "train" / f"round-{round_}",
                        out_dir=out, dtype=dtype, device=device)
    release_memory()  # the next stage (an eval engine) starts in this process's shadow
    stats.update(base_model=base_model, model=str(out), method=cfg.method)
    if distributed.is_main_process():
        store.write_summary(f"train-r{round_}", stats)
    distributed.barrier()
    return stats
