"""TEMPORARY shim until the task registry (opentao.tasks.get_task) lands; same interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opentao.errors import TaoError

SQL_STOP = [";", "\n\n", "\n```"]
_CFG: dict[str, dict[str, Any]] = {
    "sql": dict(generate=dict(strategies=["plain", "system"], temperatures=[0.3], max_new_tokens=64, stop=SQL_STOP,
                              extract="sql", system_prompts=[
                                  "You are an expert SQLite analyst. Reply with one SQLite query and nothing else. Select "
                                  "only the columns the question asks for, never SELECT *. Use only tables and columns "
                                  "that appear in the schema."]),
                score=dict(scorers=[{"type": "sql_exec", "star_score": 0.5}, {"type": "majority_vote", "mode": "sql_result"}]),
                train=dict(threshold=0.75, max_length=640), eval=dict(task="sql", max_new_tokens=64, stop=SQL_STOP)),
    "docqa": dict(generate=dict(strategies=["plain", "system"], temperatures=[0.7], max_new_tokens=32, stop=["\n"],
                                extract="none", system_prompts=[
                                    "Reply with the answer only: yes or no for a yes/no question, otherwise the exact words "
                                    "from the passage. No explanation."]),
                  score=dict(scorers=[{"type": "opentao.tasks.docqa:GroundedScorer", "vote_weight": 0.5}]),
                  train=dict(threshold=0.99, max_length=384), eval=dict(task="docqa", max_new_tokens=32, stop=[])),
    "instruct": dict(generate=dict(strategies=["plain", "system"], temperatures=[0.7], max_new_tokens=96, stop=[],
                                   extract="none", system_prompts=[
                                       "Follow every requirement in the request exactly. Keep the answer short."]),
                     score=dict(scorers=[{"type": "opentao.tasks.instruct:ConstraintScorer"}]),
                     train=dict(threshold=0.5, max_length=448), eval=dict(task="instruct", max_new_tokens=96, stop=[])),
}
_GOLD = {"sql": "sql", "docqa": "answer", "instruct": "gold"}


class _Task:
    def __init__(self, name: str) -> None:
        self.name = name
        self.gold_output = _GOLD[name]
        self.needs_db = name == "sql"
        self.config_path = Path("/tmp") / f"opentao-shim-{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(_CFG[name], sort_keys=False))

    def prepare(self, out_dir: Path | None = None) -> Path:
        from opentao.pipeline import prepare_task

        return prepare_task(self.name, out_dir)

    def files(self, task_dir: Path) -> dict[str, str | None]:
        d = Path(task_dir)
        return {"prompts": str(d / "train.jsonl"), "gold": str(d / "train_gold.jsonl"), "test": str(d / "test.jsonl"),
                "db": str(d / "chinook.sqlite") if self.needs_db else None}

    def grader(self, db: str | None = None):
        from opentao.evaluate.registry import get_evaluator

        return get_evaluator(self.name, db)


TASKS = {n: _Task(n) for n in _CFG}


def get_task(name: str) -> _Task:
    if name not in TASKS:
        raise TaoError(f"unknown task {name!r}")
    return TASKS[name]
