"""`GET /dashboard`: behind the API key (401 with nothing of the page), aggregates only, numbers checked by hand."""

from __future__ import annotations

import json

import httpx
import pytest

from opentao.flywheel import record_decision
from opentao.serve.app import create_app
from opentao.serve.dashboard import percentile, round_rows, traffic_stats
from opentao.serve.keys import add_key
from opentao.testing import EchoGenerator, serve_in_thread

SECRET = "my-private-question-7f3a"


def test_percentile_and_traffic_stats():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([5.0], 99) == 5.0 and percentile([], 50) is None
    rows = [{"seq": 1, "model_version": "base", "status": 200, "latency_ms": 10.0, "completion_tokens": 3},
            {"seq": 2, "model_version": "base", "status": 400, "latency_ms": 1.0},
            {"seq": 3, "model_version": "round-1", "status": 200, "latency_ms": 30.0, "completion_tokens": 5},
            {"seq": 4, "model_version": "base", "status": 200, "latency_ms": 20.0, "completion_tokens": 4}]
    base, r1 = traffic_stats(rows)
    assert (base["version"], base["requests"], base["ok"], base["errors"]) == ("base", 3, 2, 1)
    assert base["error_rate"] == pytest.approx(1 / 3) and base["statuses"] == {"200": 2, "400": 1}
    assert base["p50_ms"] == 15.0 and base["p90_ms"] == pytest.approx(19.0) and base["completion_tokens"] == 7
    assert (r1["version"], r1["requests"], r1["error_rate"], r1["p99_ms"]) == ("round-1", 1, 0.0, 30.0)


def test_round_rows(tmp_path):
    rdir = tmp_path / "rounds" / "round-1"
    rdir.mkdir(parents=True)
    (rdir / "export.json").write_text(json.dumps({"stats": {"rows": 24, "selected": 12, "train": 8, "heldout": 4}}))
    rows = round_rows(tmp_path, [{"kind": "round", "round": 1, "promoted": True, "served_after": "round-1"}])
    assert rows == [{"round": 1, "logged_rows": 24, "selected": 12, "train": 8, "heldout": 4, "promoted": True,
                     "served_after": "round-1"}]


def test_dashboard_behind_the_key_and_leaks_nothing(tmp_path):
    root = tmp_path / "serve"
    key = add_key(root, "ops")
    record_decision(root, "round-00001", {
        "kind": "round", "round": 1, "promoted": True, "current_version": "base", "candidate_version": "round-1",
        "served_after": "round-1", "current_score": 0.25, "candidate_score": 0.5, "margin": 0.05,
        "evaluator": "reward", "n_eval": 4, "n_prompts": 8, "reason": "candidate wins by +0.250 <b>bold</b>"})
    app = create_app(EchoGenerator(), serve_dir=root)
    with serve_in_thread(app) as url:
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=60,
                       json={"model": "tao", "messages": [{"role": "user", "content": SECRET}]})
        assert r.status_code == 200
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": key}):
            denied = httpx.get(f"{url}/dashboard", headers=headers, timeout=60)
            assert denied.status_code == 401
            assert denied.json()["error"]["code"] == "invalid_api_key"
            assert "round-1" not in denied.text and "<section" not in denied.text
        page = httpx.get(f"{url}/dashboard", headers=auth, timeout=120)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    for sid in ("served", "rounds", "decisions", "traffic", "latency", "errors"):
        assert f"<section id='{sid}'>" in html
    for plot in ("gate-scores", "traffic", "latency", "errors"):
        assert f"data-plot='{plot}'><svg" in html
    assert "custom" in html and "candidate wins by +0.250 &lt;b&gt;bold&lt;/b&gt;" in html
    hashes = [e["sha256"] for e in json.loads((root / "keys.json").read_text())["keys"]]
    assert key not in html and SECRET not in html and "echo:" not in html
    assert not any(str(h) in html for h in hashes)
    assert ">ops<" not in html  # not even the key id
    assert "<script" not in html.lower()
