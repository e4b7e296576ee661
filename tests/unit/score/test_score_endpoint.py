"""The score stage with judges behind a real HTTP endpoint (the gateway on loopback with a stub model and a fault
middleware, ``tests/endpoint_faults.py``, reached through the official openai client):
bad endpoints, counters in the stage summary, kill/resume without re-calling the endpoint, `tao score --gold`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opentao.config import ScoreConfig
from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.stage import run_score
from opentao.store import RunStore
from opentao.testing import free_port, reply as stub_reply, yes_no_logprobs
from tests.helpers.files import write_jsonl
from tests.helpers.endpoint_faults import serve_model

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def _run_with_candidates(run: Path, n_prompts: int, k: int = 2) -> RunStore:
    store = RunStore(run)
    prompts = [Prompt(f"q{i}", [{"role": "user", "content": f"Name rock band number {i}."}], round=1)
               for i in range(n_prompts)]
    store.write_part("prompts", "r1", prompts, Prompt.SCHEMA)
    cands = [Candidate(f"q{i}", f"q{i}#{j}", "plain", [], t, t, t, 1)
             for i in range(n_prompts) for j, t in enumerate([f"rock band {i} answer", f"zzz {i}"][:k])]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    return store


def _judge(url: str, **kw) -> dict:
    return {"type": "judge", "base_url": url, "model": "stub", "backoff_s": 0.01, **kw}


def test_stage_counts_retries_and_tokens(tmp_path):
    store = _run_with_candidates(tmp_path / "run", 3)
    with serve_model(None, reply=stub_reply, fail_first=2, fail_status=429) as srv:
        stats = run_score(store, ScoreConfig(scorers=[_judge(srv.base_url, concurrency=1)]), round_=1)
    c = stats["scorer_counters"]["judge"]
    assert c["judge_requests"] == 6 and c["endpoint_failures"] == 0 and c["unparsable"] == 0
    assert c["endpoint"]["retries"] == 2 and c["endpoint"]["calls"] == 8 and c["endpoint"]["errors"] == 0
    assert c["endpoint"]["prompt_tokens"] > 0 and c["endpoint"]["completion_tokens"] > 0
    assert stats["abstained"] == {}
    scores = {r["candidate_id"]: r["score"] for r in store.read("scores", 1) if r["scorer"] == "judge"}
    assert all(scores[f"q{i}#0"] > scores[f"q{i}#1"] for i in range(3))
    assert store.read_summary("score-r1")["scorer_counters"]["judge"]["endpoint"]["retries"] == 2


def test_logprob_judge_over_http_retries_and_reads_probabilities(tmp_path):
    from opentao.score.judge import YES_NO_QUESTION

    store = _run_with_candidates(tmp_path / "run", 3)
    with serve_model(None, reply=stub_reply, logprobs=yes_no_logprobs, fail_first=1, fail_status=503) as srv:
        spec = _judge(srv.base_url, type="judge_logprob", concurrency=1, top_logprobs=5)
        stats = run_score(store, ScoreConfig(scorers=[spec]), round_=1)
        asked = [e["messages"][-1]["content"] for e in srv.state.log]
    c = stats["scorer_counters"]["judge_logprob"]
    assert c["judge_requests"] == 6 and c["no_yes_no"] == 0 and c["no_logprobs"] == 0
    assert c["endpoint"]["retries"] == 1 and c["endpoint"]["calls"] == 7 and c["endpoint"]["errors"] == 0
    assert len(asked) == 7 and all(a.endswith(YES_NO_QUESTION) for a in asked)
    scores = {r["candidate_id"]: r["score"] for r in store.read("scores", 1) if r["scorer"] == "judge_logprob"}
    assert all(0 <= v <= 1 for v in scores.values()) and all(scores[f"q{i}#0"] > scores[f"q{i}#1"] for i in range(3))


def test_logprob_judge_against_a_server_without_logprobs_abstains_without_retries(tmp_path):
    store = _run_with_candidates(tmp_path / "run", 2)
    with serve_model(None, reply=stub_reply) as srv:  # no logprobs knob: the gateway answers 400
        stats = run_score(store, ScoreConfig(scorers=[_judge(srv.base_url, type="judge_logprob")]), round_=1)
    c = stats["scorer_counters"]["judge_logprob"]
    assert stats["abstained"]["judge_logprob"] == 4 and c["endpoint_failures"] == 4
    assert c["endpoint"]["retries"] == 0 and c["endpoint"]["calls"] == 4


def test_garbage_judge_abstains_and_is_counted(tmp_path):
    store = _run_with_candidates(tmp_path / "run", 2)
    with serve_model(None, reply=stub_reply, garbage="As an AI, I think it is quite good!!") as srv:
        stats = run_score(store, ScoreConfig(scorers=[_judge(srv.base_url), {"type": "relevance"}]), round_=1)
    assert stats["abstained"]["judge"] == 4 and stats["scorer_counters"]["judge"]["unparsable"] == 4
    assert "combined" not in stats["abstained"]  # the relevance guard still scores


def test_slow_endpoint_times_out_into_abstentions(tmp_path):
    store = _run_with_candidates(tmp_path / "run", 1)
    with serve_model(None, reply=stub_reply, delay_s=1.0) as srv:
        spec = _judge(srv.base_url, timeout_s=0.2, max_retries=1)
        stats = run_score(store, ScoreConfig(scorers=[spec]), round_=1)
    c = stats["scorer_counters"]["judge"]
    assert stats["abstained"]["judge"] == 2 and c["endpoint_failures"] == 2 and c["endpoint"]["errors"] == 2


def test_endpoint_down_stops_the_stage_with_a_clear_error(tmp_path):
    store = _run_with_candidates(tmp_path / "run", 2)
    spec = _judge(f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    with pytest.raises(TaoError, match="unreachable"):
        run_score(store, ScoreConfig(scorers=[spec]), round_=1)
    assert not store.parts("scores")


def test_killed_score_stage_resumes_without_recalling_the_endpoint(tmp_path):
    run = tmp_path / "run"
    n = 6
    store = _run_with_candidates(run, n)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with serve_model(None, reply=stub_reply, delay_s=0.25) as srv:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"run_dir: {run}\nscore:\n  prompts_per_part: 1\n  scorers:\n"
                       f"    - {json.dumps(_judge(srv.base_url, concurrency=1))}\n")
        proc = subprocess.Popen([*TAO, "score", "-c", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not store.parts("scores") and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_parts = store.parts("scores")
        assert 0 < len(done_parts) < n, f"the kill should land mid-way ({len(done_parts)} parts)"
        done = {r["prompt_id"] for r in store.read("scores")}
        calls_before = srv.state.requests
        res = subprocess.run([*TAO, "score", "-c", str(cfg)], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        resumed = srv.state.log[calls_before:]

    def group_of(entry: dict) -> str:
        user = entry["messages"][-1]["content"]
        return next(f"q{i}" for i in range(n) if f"band number {i}." in user)

    recalled = {group_of(e) for e in resumed} & done
    assert not recalled, f"finished groups were sent to the endpoint again: {recalled}"
    assert len(resumed) == 2 * (n - len(done))  # exactly the unfinished groups, once each
    assert {r["prompt_id"] for r in store.read("scores")} == {f"q{i}" for i in range(n)}


def test_tao_score_gold_end_to_end(tmp_path, tiny_model_dir):
    """Generate on the tiny model, score with judges over HTTP + a vote + a guard, check integrity via the CLI."""
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"q{i}", "prompt": f"Say a word about rock {i}."}
                                                 for i in range(4)])
    run = tmp_path / "run"
    with serve_model(None, reply=stub_reply, logprobs=yes_no_logprobs, fail_first=1, fail_status=503) as srv:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("\n".join([
            f"run_dir: {run}", f"model: {tiny_model_dir}", f"prompts: {prompts}",
            "generate: {k: 4, max_new_tokens: 6, temperatures: [1.5], batch_size: 16}",
            "score:", "  scorers:",
            f"    - {json.dumps(_judge(srv.base_url))}",
            f"    - {json.dumps({**_judge(srv.base_url), 'type': 'judge_group'})}",
            f"    - {json.dumps({**_judge(srv.base_url), 'type': 'judge_logprob'})}",
            "    - {type: majority_vote, min_votes: 1}",
            "    - {type: length_penalty, max_length: 200}",
        ]) + "\n")
        res = subprocess.run([*TAO, "generate", "-c", str(cfg)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        store = RunStore(run)
        # gold: the answer of candidate #1 of each prompt (so the groups are mixed; this is a plumbing test)
        answers = {r["prompt_id"]: r["answer"] for r in store.read("candidates") if r["candidate_id"].endswith("#1")}
        gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": pid, "prompt": "-", "answer": a or "x"}
                                                     for pid, a in answers.items()])
        res = subprocess.run([*TAO, "score", "-c", str(cfg), "--gold", str(gold)], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "250"})
    assert res.returncode == 0, res.stderr
    assert "reward integrity" in res.stdout and "best-of-K acc" in res.stdout, res.stdout
    assert "retries 1" in res.stdout  # endpoint counters shown in the stage summary
    rows = {r["scorer"]: r for r in store.read("integrity", 1)}
    assert set(rows) == {"judge", "judge_group", "judge_logprob", "majority_vote", "length_penalty", "combined"}
    assert rows["length_penalty"]["role"] == "guard" and rows["combined"]["role"] == "combined"
    assert all(r["groups"] == 4 and r["oracle"] == 1.0 for r in rows.values())
    summary = json.loads((run / "summary" / "integrity-r1.json").read_text())
    assert summary["groups_with_gold"] == 4 and summary["majority_label_accuracy"] is not None
    # a gold file whose ids match nothing: one clear error line
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "zz", "prompt": "-", "answer": "1"}])
    res = subprocess.run([*TAO, "score", "-c", str(cfg), "--gold", str(other)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error:") and "match the run's 4 prompts" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
