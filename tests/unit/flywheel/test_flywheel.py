"""The flywheel: prompt export from the inference table, the promotion gate, rollback, a whole round."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest

from opentao.errors import TaoError
from opentao.flywheel import (
    gate,
    load_flywheel_config,
    parse_duration,
    read_decisions,
    read_state,
    rollback,
    run_round,
    select_prompts,
)
from opentao.flywheel.gates import ExactMatchEvaluator, GateScores, greedy_answers, parse_verdict
from opentao.serve.app import create_app
from opentao.serve.host import read_pointer, write_pointer
from opentao.serve.log import read_rows
from opentao.testing import serve_in_thread
from tests.helpers.files import write_jsonl

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def _row(seq, messages, status=200, key="k", meta=None, rid=None):
    return {"seq": seq, "request_id": rid or f"r{seq}", "status": status, "key_id": key,
            "messages": json.dumps(messages), "metadata": json.dumps({"metadata": meta or {}, "user": ""})}


def test_export_keeps_answerable_deduplicated_multi_turn_prompts():
    u = lambda t: {"role": "user", "content": t}  # noqa: E731
    a = lambda t: {"role": "assistant", "content": t}  # noqa: E731
    rows = [
        _row(1, [u("What is 2+2?")], meta={"task": "math"}),
        _row(2, [u("What is 2+2?")], meta={"task": "math"}),  # duplicate
        _row(3, [u("Hi"), a("Hello! How can I help?"), u("Add 3 and 4.")], meta={"task": "math"}),  # multi-turn
        _row(4, [u("broken")], status=500, meta={"task": "math"}),  # failure
        _row(5, [u("Write a poem")], meta={"task": "poetry"}),  # other task
        _row(6, [u("Hi"), a("prefill")], meta={"task": "math"}),  # ends with the assistant: nothing to answer
        _row(7, [[u("p1")], [u("p2")]], meta={"task": "math"}),  # a completions request with two prompts
        _row(8, [u("from another key")], key="other", meta={"task": "math"}),
    ]
    cfg = load_flywheel_config(None, ["filter.task=math", "key_ids=[k]"])
    prompts, stats = select_prompts(rows, cfg, 1)
    assert [p.messages[-1]["content"] for p in prompts] == ["What is 2+2?", "Add 3 and 4.", "p1", "p2"]
    assert prompts[1].messages[0] == u("Hi") and len(prompts[1].messages) == 3, "earlier turns are context"
    assert stats == {"rows": 8, "failed": 1, "filtered": 2, "duplicates": 1, "unanswerable": 1, "selected": 4}
    sampled, _ = select_prompts(rows, load_flywheel_config(None, ["max_prompts=2"]), 1)
    assert len(sampled) == 2


def test_config_and_duration_errors_are_one_line():
    assert parse_duration("30m") == 1800 and parse_duration("90") == 90 and parse_duration("1.5h") == 5400
    with pytest.raises(TaoError, match="duration"):
        parse_duration("soon")
    with pytest.raises(TaoError, match="margn"):
        load_flywheel_config(None, ["margn=0.1"])
    with pytest.raises(TaoError, match="tao.prompts is set by the flywheel"):
        load_flywheel_config(None, ["tao.prompts=x.jsonl"])
    assert parse_verdict("B.") == "B" and parse_verdict("Answer: A") == "A" and parse_verdict("both") is None


def test_gate_rejects_a_worse_model_promotes_a_better_one_and_rollback_restores(tmp_path, tiny_model_dir,
                                                                                 other_model_dir):
    """Better/worse made deterministic: the dev set's gold answers are one model's own greedy outputs."""
    root = tmp_path / "fly"
    write_pointer(root, "base", str(tiny_model_dir), "first start")
    convs = [[{"role": "user", "content": f"Question {i}: what comes next?"}] for i in range(6)]
    base_out = greedy_answers(str(tiny_model_dir), convs, max_new_tokens=6)
    other_out = greedy_answers(str(other_model_dir), convs, max_new_tokens=6)
    assert base_out != other_out
    dev_base = write_jsonl(tmp_path / "dev-base.jsonl", [{"messages": c, "answer": a} for c, a in zip(convs, base_out)])
    dev_other = write_jsonl(tmp_path / "dev-other.jsonl",
                            [{"messages": c, "answer": a} for c, a in zip(convs, other_out)])

    worse = gate(root, candidate=str(other_model_dir), candidate_version="round-1", round_=1, margin=0.05,
                 evaluator=ExactMatchEvaluator(str(dev_base), max_new_tokens=6))
    assert worse["current_score"] == 1.0 and worse["candidate_score"] < 0.5 and not worse["promoted"]
    assert read_pointer(root)["version"] == "base"

    better = gate(root, candidate=str(other_model_dir), candidate_version="round-2", round_=2, margin=0.05,
                  evaluator=ExactMatchEvaluator(str(dev_other), max_new_tokens=6))
    assert better["candidate_score"] == 1.0 and better["current_score"] < 0.5 and better["promoted"]
    assert read_pointer(root)["version"] == "round-2" and read_pointer(root)["path"] == str(other_model_dir)

    back = rollback(root, "bad answers reported")
    assert back["served_after"] == "base" and read_pointer(root)["path"] == str(tiny_model_dir)
    with pytest.raises(TaoError, match="nothing to roll back"):
        rollback(root)
    kinds = [(d["kind"], d["promoted"], d["served_after"]) for d in read_decisions(root)]
    assert kinds == [("round", False, "base"), ("round", True, "round-2"), ("rollback", False, "base")]


class _Fixed:
    name = "fixed"

    def __init__(self, current, candidate):  # ten examples, each scored like the mean (the margin decides)
        self.scores = GateScores(current, candidate, 10, per_example=[(current, candidate)] * 10)

    def compare(self, current, candidate):
        return self.scores


@pytest.mark.parametrize("current,candidate,margin,promoted", [
    (0.50, 0.54, 0.05, False),  # wins, but by less than the margin
    (0.50, 0.56, 0.05, True),
    (0.50, 0.50, 0.0, False),  # a tie never promotes, even with margin 0
    (0.60, 0.40, 0.0, False),
])
def test_gate_margin(tmp_path, current, candidate, margin, promoted):
    write_pointer(tmp_path, "base", "/models/base", "first start")
    d = gate(tmp_path, candidate="/models/new", candidate_version="round-1", round_=1, margin=margin,
             evaluator=_Fixed(current, candidate))
    assert d["promoted"] is promoted and read_pointer(tmp_path)["version"] == ("round-1" if promoted else "base")


def test_a_round_on_logged_traffic_end_to_end(tmp_path, tiny_model_dir):
    root = tmp_path / "fly"
    with serve_in_thread(create_app(str(tiny_model_dir), serve_dir=root)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        for i in range(10):
            c.chat.completions.create(model="tao", max_tokens=4, messages=[
                {"role": "user", "content": f"Name a fruit, number {i}."}])
        c.chat.completions.create(model="tao", max_tokens=4, messages=[
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name a fruit."}])
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    cfg = load_flywheel_config(None, [
        f"dir={root}", "min_prompts=4", "holdout=0.25", "margin=0.0",
        f"gate.judge_model={tiny_model_dir}", "gate.max_new_tokens=6",
        "tao.generate={k: 2, max_new_tokens: 6, temperatures: [1.0], batch_size: 16, prompts_per_part: 8}",
        "tao.score={scorers: [{type: regex, pattern: '[A-Za-z]'}]}",
        "tao.train={max_steps: 1, batch_size: 4, save_steps: 1, lora_r: 4, lora_alpha: 8, max_length: 128, "
        "threshold: 0.5}",
    ])
    lines: list[str] = []
    d = run_round(cfg, report=lines.append)
    assert d["kind"] == "round" and d["round"] == 1 and d["evaluator"] == "judge"
    assert d["promoted"] == (d["candidate_score"] > d["current_score"])
    assert read_pointer(root)["version"] == d["served_after"]
    export = json.loads((root / "rounds" / "round-1" / "export.json").read_text())["stats"]
    assert export["rows"] == 12 and export["failed"] == 1 and export["selected"] == 11
    assert export["train"] + export["heldout"] == 11 and export["heldout"] >= 1
    trained = [json.loads(x) for x in (root / "rounds" / "round-1" / "prompts.jsonl").read_text().splitlines()]
    assert any(len(p["messages"]) == 3 for p in trained) or export["heldout"] >= 1
    assert read_state(root) == {"last_seq": max(r["seq"] for r in read_rows(root)), "rounds": 1}
    again = run_round(cfg, report=lines.append)
    assert "skipped" in again and read_state(root)["rounds"] == 1, "no new traffic: nothing happens"
    out = subprocess.run([*TAO, "decisions", "--dir", str(root)], capture_output=True, text=True)
    assert "round 1: judge gate" in out.stdout and f"serving now: {d['served_after']}" in out.stdout


def test_cli_errors(tmp_path):
    r = subprocess.run([*TAO, "flywheel", "--dir", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: no served model")
    write_pointer(tmp_path, "base", "/m", "first")
    r = subprocess.run([*TAO, "rollback", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "nothing to roll back" in r.stderr
    r = subprocess.run([*TAO, "keys", "add", "team-a", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("sk-tao-")
    r = subprocess.run([*TAO, "keys", "add", "team-a", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr
