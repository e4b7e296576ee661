"""The quickstart config (its task files come from the task registry: ``opentao.tasks.get_task("sql")``)."""

from __future__ import annotations

from pathlib import Path

from opentao.config import RunConfig


def quickstart_config(run_dir: str, task_dir: Path, overrides: list[str] | None = None) -> RunConfig:
    """The quickstart: text-to-SQL on the real Chinook database, aimed at ≤ 15 min on 2 CPU cores (its measured runs: docs/quickstart.md)."""
    from opentao.config import load_config
    from opentao.tasks import get_task

    files = get_task("sql").files(task_dir)
    cfg_path = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    return load_config(cfg_path, overrides, run_dir=run_dir, prompts=files["prompts"], db=files["db"],
                       **{"eval.data": files["test"]})
