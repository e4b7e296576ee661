"""The `tao` CLI on bad input: one clear error line, exit status 2, and nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.helpers.files import write_jsonl
from tests.helpers.cli import TAO, tao  # noqa: F401


def _assert_clean_failure(res: subprocess.CompletedProcess, needle: str, run_dir: Path) -> None:
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr
    assert not run_dir.exists(), "a failed command must not leave a run directory behind"


@pytest.mark.parametrize("name,content,needle", [
    ("missing.jsonl", None, "not found"),
    ("empty.jsonl", b"", "empty"),
    ("cols.jsonl", b'{"question": "x"}\n', "no 'prompt' or 'messages' column"),
    ("utf.jsonl", b'{"prompt": "\xff\xfe"}\n', "not valid UTF-8"),
    ("cols.csv", b"question\nhello\n", "no 'prompt' or 'messages' column"),
])
def test_generate_bad_prompt_files(tmp_path, tiny_model_dir, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    run = tmp_path / "run"
    res = tao("generate", "--prompts", str(path), "--model", str(tiny_model_dir), "--run-dir", str(run))
    _assert_clean_failure(res, needle, run)


def test_generate_megabyte_prompt(tmp_path, tiny_model_dir):
    path = write_jsonl(tmp_path / "big.jsonl", [{"prompt": "word " * 200_000}])
    run = tmp_path / "run"
    res = tao("generate", "--prompts", str(path), "--model", str(tiny_model_dir), "--run-dir", str(run))
    _assert_clean_failure(res, "over the limit", run)


def test_unknown_model(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}])
    run = tmp_path / "run"
    res = tao("generate", "--prompts", str(path), "--model", str(tmp_path / "no-such-model"), "--run-dir", str(run))
    _assert_clean_failure(res, "neither a local model folder nor a hub id", run)


def test_unknown_scorer(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nscore:\n  scorers:\n    - {{type: telepathy}}\n")
    res = tao("score", "-c", str(cfg))
    _assert_clean_failure(res, "telepathy", tmp_path / "run")


def test_scorer_plugin_that_does_not_import(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\nscore:\n  scorers:\n    - {{type: 'no_such_pkg.mod:Scorer'}}\n")
    res = tao("score", "-c", str(cfg))
    _assert_clean_failure(res, "no_such_pkg", tmp_path / "run")


def test_config_typo(tmp_path):
    res = tao("generate", "--set", "generate.kk=2", "--run-dir", str(tmp_path / "run"))
    _assert_clean_failure(res, "generate.kk", tmp_path / "run")


@pytest.mark.parametrize("verb", ["generate", "score", "run"])
def test_engine_flag_is_generate_engine(tmp_path, verb):
    args = [str(tmp_path / "c.yaml")] if verb == "run" else []
    (tmp_path / "c.yaml").write_text("generate: {engine: hf}\n")
    res = tao(verb, *args, "--set", "generate.engine=hf", "--engine", "ray-tpu", "--run-dir", str(tmp_path / "run"))
    _assert_clean_failure(res, "generate.engine: Value error, unknown engine 'ray-tpu'", tmp_path / "run")


def test_tables_on_missing_dir(tmp_path):
    res = tao("tables", str(tmp_path / "nope"))
    _assert_clean_failure(res, "no run directory", tmp_path / "nope")


def test_eval_and_prepare_reject_unknown_tasks(tmp_path):
    for args in (["eval", "--task", "poetry"], ["prepare", "poetry"]):
        res = tao(*args, "--run-dir" if args[0] == "eval" else "--out", str(tmp_path / "run"))
        _assert_clean_failure(res, "unknown task 'poetry'", tmp_path / "run")
