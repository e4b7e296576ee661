"""The gateway on loopback with the real ``openai`` client: endpoints, logging, auth, bad input, batching, swaps."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from opentao.errors import TaoError
from opentao.serve.app import ServeSettings, create_app
from opentao.serve.host import ModelHost, Served, read_pointer, write_pointer
from opentao.serve.keys import add_key
from opentao.serve.log import SEQ_STRIDE, InferenceLog, decode_segment, encode_line, normalize_row, read_rows
from opentao.serve.redact import redact
from opentao.testing import EchoGenerator, serve_in_thread

CHAT = [{"role": "user", "content": "Say something."}]


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_openai_client_end_to_end_and_every_response_logged(tmp_path, tiny_model_dir):
    app = create_app(str(tiny_model_dir), serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        c = _client(url)
        r = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=6, temperature=0)
        multi = c.chat.completions.create(model="tao", max_tokens=5, n=2, messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "And now?"}])
        stream = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=6, stream=True,
                                           stream_options={"include_usage": True})
        chunks = list(stream)
        comp = c.completions.create(model="tao", prompt="Once upon a time", max_tokens=4)
        models = c.models.list()
        health = httpx.get(url + "/health").json()
        metrics = httpx.get(url + "/metrics").text
    assert r.choices[0].message.role == "assistant" and r.usage.completion_tokens <= 6
    assert r.system_fingerprint == "base" and len(multi.choices) == 2
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[-1].usage.completion_tokens >= 1 and chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert [m.id for m in models.data] == ["tao"] and health["model_version"] == "base"
    assert 'tao_requests_total{endpoint="chat.completions",status="200"} 3' in metrics
    rows = {row["request_id"]: row for row in read_rows(tmp_path)}
    assert len(rows) == 4 and all(row["status"] == 200 and row["model_version"] == "base" for row in rows.values())
    assert rows[r.id]["response"] == r.choices[0].message.content
    assert rows[r.id]["completion_tokens"] == r.usage.completion_tokens and rows[r.id]["prompt_tokens"] > 5
    assert [c["text"] for c in json.loads(rows[multi.id]["choices"])] == [ch.message.content for ch in multi.choices]
    assert json.loads(rows[multi.id]["messages"])[-1] == {"role": "user", "content": "And now?"}
    assert rows[chunks[0].id]["response"] == streamed
    assert rows[comp.id]["endpoint"] == "completions" and rows[comp.id]["response"] == comp.choices[0].text
    assert (tmp_path / "tables" / "inference").glob("part-*.parquet"), "a clean shutdown compacts the WAL"
    assert not list((tmp_path / "wal").glob("*.jsonl"))


def test_concurrent_clients_are_batched_and_no_row_is_lost(tmp_path, tiny_model_dir):
    app = create_app(str(tiny_model_dir), serve_dir=tmp_path, settings=ServeSettings(max_batch=16,
                                                                                      wal_segment_rows=50))
    answers: dict[str, str] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        c = _client(url)
        for j in range(15):
            r = c.chat.completions.create(model="tao", max_tokens=4,
                                          messages=[{"role": "user", "content": f"client {i} request {j}"}])
            with lock:
                answers[r.id] = r.choices[0].message.content

    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
    rows = read_rows(tmp_path)
    assert len(answers) == 120 and len(rows) == 120, "0 lost rows"
    assert {r["request_id"]: r["response"] for r in rows} == answers, "every response matches its row"
    assert len(list((tmp_path / "tables" / "inference").glob("part-*.parquet"))) >= 3, "segments rotated"
    hist = app.state.gateway.metrics.histograms["tao_batch_sequences"][()]
    assert hist.total < 120 and hist.sum == 120, "concurrent requests shared generate() calls"


def test_api_keys_rate_limit_and_nothing_logged_without_a_key(tmp_path):
    key = add_key(tmp_path, "team-a")
    slow = add_key(tmp_path, "team-b", rpm=2)
    assert key.encode() not in (tmp_path / "keys.json").read_bytes(), "only the hash is stored"
    app = create_app(EchoGenerator(), serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        with pytest.raises(openai.AuthenticationError):
            _client(url, "sk-wrong").chat.completions.create(model="tao", messages=CHAT)
        nokey = httpx.post(url + "/v1/chat/completions", json={"model": "tao", "messages": CHAT})
        assert nokey.status_code == 401 and nokey.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/v1/models").status_code == 401
        ok = _client(url, key).chat.completions.create(model="tao", messages=CHAT)
        b = _client(url, slow)
        b.chat.completions.create(model="tao", messages=CHAT)
        b.chat.completions.create(model="tao", messages=CHAT)
        with pytest.raises(openai.RateLimitError) as err:
            b.chat.completions.create(model="tao", messages=CHAT)
        assert err.value.body["code"] == "rate_limit_exceeded"
    rows = read_rows(tmp_path)
    assert [(r["key_id"], r["status"]) for r in rows] == [("team-a", 200), ("team-b", 200), ("team-b", 200),
                                                          ("team-b", 429)]
    assert rows[0]["request_id"] == ok.id


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"model": "tao", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "not valid UTF-8"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b"", 400, "empty"),
    (b'{"model": "tao", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}', 400, "NaN"),
    (json.dumps({"model": "tao"}).encode(), 400, "missing required parameter: 'messages'"),
    (json.dumps({"model": "tao", "messages": "hi"}).encode(), 400, "'messages'"),
    (json.dumps({"model": "tao", "messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "role"),
    (json.dumps({"model": "tao", "messages": CHAT, "max_tokens": "lots"}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "tao", "messages": CHAT, "max_tokens": 100000}).encode(), 400, "over this server's limit"),
    (json.dumps({"model": "tao", "messages": CHAT, "temperature": 7}).encode(), 400, "temperature"),
    (json.dumps({"model": "tao", "messages": CHAT, "temperature": "0.5"}).encode(), 400, "temperature"),
    (json.dumps({"model": "tao", "messages": CHAT, "stream": 0}).encode(), 400, "stream"),
    (json.dumps({"model": "tao", "messages": CHAT, "n": 12}).encode(), 400, "n is 12"),
    (json.dumps({"model": "tao", "messages": CHAT, "stop": ["", "x"]}).encode(), 400, "stop"),
    (json.dumps({"model": "tao", "messages": CHAT, "tools": [{"type": "function"}]}).encode(), 400, "tools"),
    (json.dumps({"model": "gpt-5", "messages": CHAT}).encode(), 404, "does not exist"),
    (json.dumps({"model": "tao", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode(), 413,
     "over the limit"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
]


def test_bad_requests_get_openai_style_4xx_and_the_server_stays_up(tmp_path):
    app = create_app(EchoGenerator(), serve_dir=tmp_path, settings=ServeSettings(max_body_bytes=200_000))
    with serve_in_thread(app) as url:
        for body, status, fragment in BAD:
            r = httpx.post(url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            err = r.json()["error"]
            assert r.status_code == status and fragment in err["message"], (body[:80], r.status_code, err)
            assert set(err) >= {"message", "type", "code"}
        assert _client(url).chat.completions.create(model="tao", messages=CHAT).choices[0].message.content
    rows = read_rows(tmp_path)
    assert [r["status"] for r in rows] == [s for _, s, _ in BAD] + [200], "errors are logged with their status"


def test_near_zero_temperature_is_served_greedily(tmp_path, tiny_model_dir):
    """Found by the fuzzer: logits / 1e-77 overflow to NaN probabilities and generate() raised (a 500)."""
    with serve_in_thread(create_app(str(tiny_model_dir))) as url:
        c = _client(url)
        tiny = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=4, temperature=2.6e-77, n=2)
        greedy = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=4, temperature=0)
    assert [ch.message.content for ch in tiny.choices] == [greedy.choices[0].message.content] * 2


def test_prompt_longer_than_the_context_is_a_400(tmp_path, tiny_model_dir):
    app = create_app(str(tiny_model_dir))
    with serve_in_thread(app) as url:
        with pytest.raises(openai.BadRequestError) as err:
            _client(url).chat.completions.create(model="tao", max_tokens=8,
                                                 messages=[{"role": "user", "content": "word " * 2500}])
        assert err.value.body["code"] == "context_length_exceeded"
        assert httpx.get(url + "/health").json()["status"] == "ok"


def test_hot_swap_finishes_in_flight_batch_on_the_old_model(tmp_path):
    slow_old = EchoGenerator("old", delay_s=1.0)
    new = EchoGenerator("new")
    write_pointer(tmp_path, "v1", "old-path", "test")
    host = ModelHost(Served("v1", slow_old), pointer_dir=tmp_path, loader=lambda v, p: Served(v, new), poll_s=0.05)
    app = create_app(host, serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        c = _client(url)
        with ThreadPoolExecutor(1) as pool:
            inflight = pool.submit(c.chat.completions.create, model="tao", messages=CHAT)
            time.sleep(0.3)  # the old model is now generating
            write_pointer(tmp_path, "v2", "new-path", "promoted")
            deadline = time.time() + 10
            while host.current.version != "v2" and time.time() < deadline:
                time.sleep(0.02)
            after = c.chat.completions.create(model="tao", messages=CHAT)
            before = inflight.result()
    assert before.choices[0].message.content.startswith("old") and before.system_fingerprint == "v1"
    assert after.choices[0].message.content.startswith("new") and after.system_fingerprint == "v2"
    rows = {r["request_id"]: r["model_version"] for r in read_rows(tmp_path)}
    assert rows == {before.id: "v1", after.id: "v2"}


def test_pointer_change_swaps_real_models_under_traffic(tmp_path, tiny_model_dir, other_model_dir):
    app = create_app(str(tiny_model_dir), serve_dir=tmp_path, settings=ServeSettings(reload_poll_s=0.1))
    assert read_pointer(tmp_path)["version"] == "base"
    seen: list[tuple[str, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        c = _client(url)
        while not stop.is_set():
            r = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=3)
            seen.append((r.id, r.system_fingerprint))

    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(3) as pool:
            futs = [pool.submit(traffic) for _ in range(3)]
            time.sleep(0.5)
            write_pointer(tmp_path, "round-1", str(other_model_dir), "test")
            deadline = time.time() + 30
            while not any(v == "round-1" for _, v in seen[-3:]) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            stop.set()
            for f in futs:
                f.result()  # no request failed during the swap
    versions = [v for _, v in seen]
    assert "base" in versions and versions[-1] == "round-1"
    assert {r["request_id"]: r["model_version"] for r in read_rows(tmp_path)} == dict(seen)


def test_torn_and_corrupt_wal_lines_are_skipped_on_recovery(tmp_path):
    # a WAL segment as a killed server leaves it: 5 fsync'd rows, one corrupted, then a torn last write
    (tmp_path / "wal").mkdir()
    seqs = [SEQ_STRIDE * 3 + i for i in range(5)]
    lines = [encode_line(normalize_row({"request_id": f"r{i}", "status": 200, "response": f"answer {i}",
                                        "seq": seqs[i]})) for i in range(5)]
    lines[2] = lines[2].replace(b"answer 2", b"answer X")  # a flipped byte in the middle: CRC mismatch
    wal = tmp_path / "wal" / "wal-00000003.jsonl"
    wal.write_bytes(b"".join(lines) + b'0badc0de {"request_id": "r5", "sta')
    rows, bad = decode_segment(wal.read_bytes())
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r3", "r4"] and bad == 2
    assert [r["request_id"] for r in read_rows(tmp_path)] == ["r0", "r1", "r3", "r4"], "readers skip them too"
    log = InferenceLog(tmp_path).start()
    assert log.stats["recovered_rows"] == 4 and log.stats["skipped_lines"] == 2 and not wal.exists()
    with pytest.raises(TaoError, match="already writing"):
        InferenceLog(tmp_path).start()
    log.append({"request_id": "r6", "status": 200}).result()
    log.close()
    rows = read_rows(tmp_path)
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r3", "r4", "r6"]
    assert [r["seq"] for r in rows[:4]] == [seqs[i] for i in (0, 1, 3, 4)] and rows[4]["seq"] > seqs[-1]


def test_failed_log_write_fails_the_request_instead_of_dropping_the_row(tmp_path):
    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    app = create_app(EchoGenerator(), serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        log = app.state.gateway.log
        log._fh = FullDisk()  # the writer thread is idle between requests
        r = httpx.post(url + "/v1/chat/completions", json={"model": "tao", "messages": CHAT})
        assert r.status_code == 500 and r.json()["error"]["code"] == "log_write_failed"
        ok = _client(url).chat.completions.create(model="tao", messages=CHAT)  # a fresh segment: served again
    assert log.stats["write_errors"] == 1
    assert [row["request_id"] for row in read_rows(tmp_path)] == [ok.id]


def test_pii_is_redacted_before_logging(tmp_path):
    text = "mail jane.doe@example.com, call +1 415-555-0132, card 4111 1111 1111 1111, order 1234567890123"
    red = redact(text)
    assert "example.com" not in red and "555" not in red and "4111" not in red
    assert "[EMAIL]" in red and "[PHONE]" in red and "[CARD]" in red
    app = create_app(EchoGenerator(), serve_dir=tmp_path, settings=ServeSettings(redact_pii=True))
    with serve_in_thread(app) as url:
        r = _client(url).chat.completions.create(model="tao", messages=[{"role": "user", "content": text}],
                                                 max_tokens=200)
    assert "jane.doe@example.com" in r.choices[0].message.content, "the client gets the real answer"
    row = read_rows(tmp_path)[0]
    assert "jane.doe" not in row["messages"] and "jane.doe" not in row["response"] and row["redacted"]


def test_delta_lake_sink_appends_each_part_once(tmp_path):
    pytest.importorskip("deltalake")
    from deltalake import DeltaTable

    uri = str(tmp_path / "delta")
    log = InferenceLog(tmp_path / "serve", delta_uri=uri, segment_rows=3).start()
    for i in range(7):
        log.append({"request_id": f"r{i}", "status": 200}).result()
    log.close()
    assert sorted(DeltaTable(uri).to_pyarrow_table()["request_id"].to_pylist()) == [f"r{i}" for i in range(7)]
    log.delta.sync(sorted((tmp_path / "serve" / "tables" / "inference").glob("part-*.parquet")))
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 7, "a re-sync appends nothing twice"


def test_serve_in_thread_with_a_stub_generator_and_no_serve_dir():
    with serve_in_thread(create_app(EchoGenerator("stub"))) as url:
        r = _client(url).chat.completions.create(model="tao", messages=CHAT)
    assert r.choices[0].message.content == "stub: Say something."
