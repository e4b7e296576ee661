"""Every verb taking --run-dir, on a run dir that is a file, sits under a file, or is read-only: one `error:`
line, exit 2, no traceback; `tao eval` on malformed or oversized rows likewise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opentao.cli import main
from tests.helpers.files import write_jsonl

def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tao", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    return exc.value.code, err


def assert_one_error(code: int, err: str, needle: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in lines[0] and "Traceback" not in err, lines[0]


@pytest.fixture()
def config(tmp_path, tiny_model_dir) -> Path:
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Say hi."}])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps({"model": str(tiny_model_dir), "prompts": str(prompts),
                               "score": {"scorers": [{"type": "regex", "pattern": "hi"}]}}))
    return cfg


def verbs(config: Path) -> dict[str, list[str]]:
    return {"generate": ["generate", "-c", str(config)], "score": ["score", "-c", str(config)],
            "train": ["train", "-c", str(config)], "run": ["run", str(config)], "eval": ["eval", "--task", "sql"],
            "quickstart": ["quickstart"]}


@pytest.mark.parametrize("verb", ["generate", "score", "train", "run", "eval", "quickstart"])
def test_run_dir_that_is_a_file_or_under_a_file(monkeypatch, capsys, tmp_path, config, verb):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    args = verbs(config)[verb]
    code, err = run_cli(monkeypatch, capsys, *args, "--run-dir", str(blocker))
    assert_one_error(code, err, "is a file, not a directory")
    code, err = run_cli(monkeypatch, capsys, *args, "--run-dir", str(blocker / "sub" / "run"))
    assert_one_error(code, err, f"{blocker} is a file")
    assert blocker.read_text() == "x"


@pytest.fixture()
def read_only_dir(tmp_path):
    """A directory nobody can write: a read-only tmpfs mount as root (permission bits do not bind root),
    else mode 0555."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode != 0:
            pytest.skip("root without mount: cannot make a read-only directory")
        try:
            yield ro
        finally:
            subprocess.run(["umount", str(ro)], check=True)
    else:
        os.chmod(ro, 0o555)
        yield ro
        os.chmod(ro, 0o755)


@pytest.mark.parametrize("verb", ["generate", "score", "train", "run", "eval", "quickstart"])
def test_read_only_run_dir(monkeypatch, capsys, config, read_only_dir, verb):
    for run_dir in (read_only_dir, read_only_dir / "run"):
        code, err = run_cli(monkeypatch, capsys, *verbs(config)[verb], "--run-dir", str(run_dir))
        assert_one_error(code, err, "is not writable")
    assert list(read_only_dir.iterdir()) == []


@pytest.mark.parametrize("messages,needle", [
    ("not a list", "not a JSON list"),
    ([{"role": "user"}], "string content"),
    ([{"role": "user", "content": 5}], "string content"),
    ([{"role": "wizard", "content": "x"}], "role in"),
    ([], "non-empty list"),
    ([{"role": "user", "content": "x" * 1_000_001}], "over the limit"),
])
def test_eval_rejects_malformed_and_oversized_rows(monkeypatch, capsys, tmp_path, messages, needle):
    data = write_jsonl(tmp_path / "dev.jsonl", [{"messages": [{"role": "user", "content": "ok"}], "answer": "a", "kind": "span"},
                                                 {"messages": messages, "answer": "b", "kind": "span"}])
    code, err = run_cli(monkeypatch, capsys, "eval", "--task", "docqa", "--data", str(data),
                        "--run-dir", str(tmp_path / "run"))
    assert_one_error(code, err, needle)
    assert "row 2" in err and not (tmp_path / "run").exists()
