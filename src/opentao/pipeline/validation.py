"""Check a config's inputs for the stages about to run, before anything is written to the run directory, and
read a round's prompts (:func:`round_prompts`, which the generate stage and the check share)."""

from __future__ import annotations

from pathlib import Path

from opentao.config import RunConfig
from opentao.data import load_prompts
from opentao.errors import TaoError
from opentao.records import Prompt


def validate(cfg: RunConfig, stages: tuple[str, ...]) -> None:
    """Check every input the given stages will read *before* anything is written to the run directory."""
    from opentao.models import resolve_model

    if "generate" in stages:
        round_prompts(cfg, 1)
    if {"generate", "train"} & set(stages):
        resolve_model(cfg.model)
    if "score" in stages:
        from opentao.score.registry import build_scorers
        from opentao.score.stage import with_default_db, with_round_model

        if not cfg.score.scorers:
            raise TaoError("no scorers configured: add at least one under score.scorers")
        build_scorers(with_round_model(with_default_db(cfg.score.scorers, cfg.db), cfg.model))
    if "eval" in stages and cfg.eval.data:
        from opentao.evaluate.base import load_eval_rows
        from opentao.tasks import get_task

        db = cfg.eval.db or cfg.db
        task = get_task(cfg.eval.task)
        if task.needs_db and (not db or not Path(db).is_file()):
            raise TaoError(f"eval needs an existing database (eval.db or db), got {db!r}")
        evaluator = task.grader(db)
        load_eval_rows(cfg.eval.data, evaluator.gold_fields, evaluator.task)


def round_prompts(cfg: RunConfig, round_: int) -> list[Prompt]:
    if not cfg.prompts:
        raise TaoError("no prompts: set 'prompts:' in the config or pass --prompts FILE")
    prompts = load_prompts(cfg.prompts, round_=round_)
    return prompts[: cfg.max_prompts] if cfg.max_prompts else prompts
