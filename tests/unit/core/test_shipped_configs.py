"""Every config the project ships loads and validates: each task's config.yaml, the packaged configs
(quickstart) and the examples (a flywheel example is a FlywheelConfig)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opentao.config import RunConfig, load_config, validate_config
from opentao.score.registry import build_scorers
from opentao.tasks import TASKS

REPO = Path(__file__).resolve().parents[3]
PACKAGED = sorted((REPO / "src" / "opentao" / "configs").glob("*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_there_are_configs_to_check() -> None:
    assert PACKAGED and EXAMPLES and set(TASKS) >= {"sql", "docqa", "instruct"}


@pytest.mark.parametrize("name", list(TASKS))
def test_task_config_loads_and_fills_the_task_files(name: str, tmp_path: Path) -> None:
    task = TASKS[name]
    folder = name.replace("-", "_")  # a package name has no hyphen: task sql-flights lives in tasks/sql_flights/
    assert task.config_path == REPO / "src" / "opentao" / "tasks" / folder / "config.yaml"
    raw = yaml.safe_load(task.config_path.read_text())
    assert not {"run_dir", "prompts", "db"} & set(raw) and "data" not in raw.get("eval", {}), \
        "a task config leaves the run directory and the task files to the loader"
    cfg = task.config(tmp_path, run_dir=str(tmp_path / "run"))
    assert isinstance(cfg, RunConfig) and cfg.eval.task == name
    files = task.files(tmp_path)
    assert (cfg.prompts, cfg.db, cfg.eval.data) == (files["prompts"], files["db"], files["test"])
    assert cfg.score.scorers, "a task config names its label-free scorers"
    if not task.needs_db:  # SQL scorers need the database itself, which is built by prepare()
        assert build_scorers(cfg.score.scorers)
    overridden = task.config(tmp_path, ["generate.k=3"], run_dir=str(tmp_path / "run"))
    assert overridden.generate.k == 3


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: p.name)
def test_packaged_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.eval.task in TASKS


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_validates(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    if "tao" in raw or "gate" in raw:  # a flywheel config: its 'tao' section is a RunConfig
        from opentao.flywheel import FlywheelConfig, load_flywheel_config

        cfg = load_flywheel_config(path)
        assert isinstance(cfg, FlywheelConfig)
        tao = validate_config(RunConfig, dict(cfg.tao), f"{path.name}: tao")
        assert build_scorers(tao.score.scorers)
    else:
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig) and cfg.eval.task in TASKS
