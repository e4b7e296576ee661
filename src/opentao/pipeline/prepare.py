"""The quickstart config, and a task's files by name (the task registry builds them once into the cache)."""

from __future__ import annotations

from pathlib import Path

from opentao.config import RunConfig


def quickstart_config(run_dir: str, task_dir: Path, overrides: list[str] | None = None) -> RunConfig:
    """The quickstart: text-to-SQL on the real Chinook database, aimed at ≤ 15 min on 2 CPU cores (its measured runs: docs/quickstart.md)."""
    from opentao.config import load_config

    cfg_path = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    return load_config(
        cfg_path, overrides,
        run_dir=run_dir,
        prompts=str(task_dir / "train.jsonl"),
        db=str(task_dir / "chinook.sqlite"),
        **{"eval.data": str(task_dir / "test.jsonl")},
    )


def prepare_task(task: str, out_dir: Path | None = None) -> Path:
    """Build a registered task's files once and return their folder (``opentao.tasks.get_task(task).prepare``)."""
    from opentao.tasks import get_task

    return get_task(task).prepare(out_dir)
