"""The bundled tasks' files and the quickstart config (built once into the cache)."""

from __future__ import annotations

from pathlib import Path

from opentao.config import RunConfig
from opentao.errors import TaoError


def quickstart_config(run_dir: str, task_dir: Path, overrides: list[str] | None = None) -> RunConfig:
    """The quickstart: text-to-SQL on the real Chinook database, aimed at ≤ 15 min on 2 CPU cores (measured: docs/quickstart.md)."""
    from opentao.config import load_config

    cfg_path = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    return load_config(
        cfg_path, overrides,
        run_dir=run_dir,
        prompts=str(task_dir / "train.jsonl"),
        db=str(task_dir / "chinook.sqlite"),
        **{"eval.data": str(task_dir / "test.jsonl")},
    )


def prepare_sql_task(out_dir: Path) -> dict:
    """Build the Chinook text-to-SQL task files (train prompts without labels; test with gold) once."""
    import shutil

    from opentao.tasks.chinook import build_sql_task

    if (out_dir / "test.jsonl").is_file() and (out_dir / "chinook.sqlite").is_file():
        return {"dir": str(out_dir), "cached": True}
    info = build_sql_task(out_dir)
    db = Path(info["db"])
    dest = out_dir / "chinook.sqlite"
    if db.resolve() != dest.resolve():
        tmp = dest.with_name(".chinook.sqlite.tmp")
        shutil.copyfile(db, tmp)
        tmp.replace(dest)
    return info


TASK_DIRS = {"sql": "chinook-sql", "docqa": "docqa", "instruct": "instruct"}


def prepare_task(task: str, out_dir: Path | None = None) -> Path:
    """Build a bundled task's files once (``sql``, ``docqa`` or ``instruct``) and return their folder."""
    from opentao.paths import cache_dir

    if task not in TASK_DIRS:
        raise TaoError(f"unknown task {task!r}: available: {', '.join(TASK_DIRS)}")
    out = Path(out_dir or cache_dir() / "tasks" / TASK_DIRS[task])
    if task == "sql":
        prepare_sql_task(out)
    elif not (out / "test.jsonl").is_file():
        if task == "docqa":
            from opentao.tasks.docqa import build_docqa_task

            build_docqa_task(out)
        else:
            from opentao.tasks.instruct import build_instruct_task

            build_instruct_task(out)
    return out
