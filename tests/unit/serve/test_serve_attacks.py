"""The gateway against a hostile or careless client: costly stop strings, lone surrogates, huge integers, a full
queue, clients that hang up, and an operator who revokes the last key or breaks keys.json."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from opentao.errors import TaoError
from opentao.generate.backend import GenRequest
from opentao.generate.hf import HFGenerator
from opentao.serve.app import ServeSettings, create_app
from opentao.serve.keys import add_key, revoke_key
from opentao.serve.log import InferenceLog, read_rows
from opentao.serve.schemas import MAX_STOP_CHARS
from opentao.testing import EchoGenerator, serve_in_thread

CHAT = [{"role": "user", "content": "Say something."}]
URL = "/v1/chat/completions"


def _post(url: str, body: dict | bytes, key: str | None = None, timeout: float = 60) -> httpx.Response:
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + URL, content=content, headers=headers, timeout=timeout)


def _timed(fn, *args, **kwargs) -> tuple[httpx.Response, float]:
    t = time.perf_counter()
    r = fn(*args, **kwargs)
    return r, time.perf_counter() - t


# --- stop strings ----------------------------------------------------------------------------------------
def test_a_20k_char_stop_is_a_fast_400_and_delays_no_innocent_request(tmp_path, tiny_model_dir):
    app = create_app(str(tiny_model_dir), serve_dir=tmp_path)
    innocent = {"model": "tao", "messages": CHAT, "max_tokens": 8, "temperature": 0}
    with serve_in_thread(app) as url:
        _post(url, innocent)  # warm-up
        baseline = min(_timed(_post, url, innocent)[1] for _ in range(3))
        with ThreadPoolExecutor(4) as pool:
            attacks = [pool.submit(_timed, _post, url, {**innocent, "stop": "x" * 20_000}),
                       pool.submit(_timed, _post, url, {**innocent, "stop": ["a", "y" * 20_000]})]
            time.sleep(0.2)
            victim = pool.submit(_timed, _post, url, innocent)
            # the longest stop the schema accepts runs on the generate thread next to the innocent request
            longest = pool.submit(_timed, _post, url, {**innocent, "stop": ["z" * MAX_STOP_CHARS] * 4})
            (r1, t1), (r2, t2) = attacks[0].result(), attacks[1].result()
            (rv, tv), (rl, tl) = victim.result(), longest.result()
    assert r1.status_code == r2.status_code == 400 and r1.json()["error"]["param"] == "stop"
    assert "at most 256 characters" in r1.json()["error"]["message"]
    assert t1 < 2.0 and t2 < 2.0, (t1, t2)
    assert rv.status_code == rl.status_code == 200
    assert tv < 5 * baseline + 2.0 and tl < 5 * baseline + 2.0, (baseline, tv, tl)
    statuses = sorted(row["status"] for row in read_rows(tmp_path))
    assert statuses.count(400) == 2 and statuses.count(200) == 6


def test_stop_matcher_stops_on_multi_token_and_multibyte_stops_per_row(tiny_model_dir):
    from opentao.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="auto", device="cpu")
    gen = HFGenerator(model, tok)
    msgs = [{"role": "user", "content": "hello there"}]
    free = gen.generate([GenRequest(msgs, 0.0, 30)])[0]
    assert free.num_tokens > 10, free
    stop = free.text[len(free.text) // 3: len(free.text) // 3 + 6]  # likely spans a token boundary
    never = "€" * MAX_STOP_CHARS
    cut, untouched, big = gen.generate([GenRequest(msgs, 0.0, 30, stop=(stop,)), GenRequest(msgs, 0.0, 30),
                                        GenRequest(msgs, 0.0, 30, stop=(never, "\x00"))])
    assert stop in cut.text and free.text.startswith(cut.text), (free.text, cut.text)
    assert cut.num_tokens < free.num_tokens, "the row stopped at its own stop string"
    assert untouched.text == free.text and big.text == free.text, "other rows in the batch ran to their budget"


def test_interrupt_ends_a_running_generate_call(tiny_model_dir):
    from opentao.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="auto", device="cpu")
    gen = HFGenerator(model, tok)
    result: list = []
    worker = threading.Thread(target=lambda: result.extend(
        gen.generate([GenRequest(CHAT, 1.0, 1500)] * 4)))
    worker.start()
    time.sleep(0.5)
    for _ in range(5):
        gen.interrupt()
        time.sleep(0.05)
    worker.join(timeout=10)
    assert not worker.is_alive() and result and all(o.num_tokens < 1500 for o in result)


# --- input hygiene ---------------------------------------------------------------------------------------
def test_lone_surrogates_are_400s_and_concurrent_innocents_are_all_served_and_logged(tmp_path):
    gen = EchoGenerator(delay_s=0.05)
    app = create_app(gen, serve_dir=tmp_path)
    bad_bodies = [
        b'{"model": "tao", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}',
        b'{"model": "tao", "messages": [{"role": "user", "content": "x"}], "user": "\\udfff"}',
        b'{"model": "tao", "messages": [{"role": "user", "content": "x"}], "metadata": {"\\ud800": "v"}}',
        b'{"model": "tao\\udc80", "messages": [{"role": "user", "content": "x"}]}',
    ]

    def innocent(i: int) -> httpx.Response:
        return _post(url, {"model": "tao", "messages": [{"role": "user", "content": f"innocent {i} 😀"}]})

    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(16) as pool:
            bad = [pool.submit(_post, url, bad_bodies[i % len(bad_bodies)]) for i in range(40)]
            good = [pool.submit(innocent, i) for i in range(40)]
            bad, good = [f.result() for f in bad], [f.result() for f in good]
        stats = dict(app.state.gateway.log.stats)
    assert all(r.status_code == 400 and r.json()["error"]["code"] == "invalid_unicode" for r in bad)
    assert all(r.status_code == 200 for r in good), [r.status_code for r in good if r.status_code != 200]
    rows = read_rows(tmp_path)
    assert len(rows) == 80 and sorted(r["status"] for r in rows) == [200] * 40 + [400] * 40
    assert stats["write_errors"] == 0 and stats["rejected_rows"] == 0


def test_a_row_that_cannot_be_encoded_fails_alone_not_its_group_commit(tmp_path):
    log = InferenceLog(tmp_path).start()
    futures = [log.append({"request_id": f"r{i}", "status": 200,
                           "response": "\ud800" if i % 3 == 0 else f"ok {i}"}) for i in range(30)]
    outcomes = []
    for f in futures:
        try:
            f.result(timeout=10)
            outcomes.append("ok")
        except ValueError:
            outcomes.append("bad")
    log.close()
    assert outcomes == ["bad" if i % 3 == 0 else "ok" for i in range(30)]
    assert sorted(r["request_id"] for r in read_rows(tmp_path)) == sorted(f"r{i}" for i in range(30) if i % 3)
    assert log.stats["write_errors"] == 0 and log.stats["rejected_rows"] == 10


@pytest.mark.parametrize("field", ["max_tokens", "seed", "n", "max_completion_tokens"])
def test_a_5000_digit_integer_is_a_400(tmp_path, field):
    app = create_app(EchoGenerator(), serve_dir=tmp_path)
    body = b'{"model": "tao", "messages": [{"role": "user", "content": "x"}], "%s": %s}' % (
        field.encode(), b"9" * 5000)
    with serve_in_thread(app) as url:
        r = _post(url, body)
        negative = _post(url, body.replace(b": 9", b": -9"))
        ok = _post(url, {"model": "tao", "messages": CHAT})
    assert r.status_code == negative.status_code == 400 and "5000 digits" in r.json()["error"]["message"]
    assert ok.status_code == 200


# --- admission and cancellation --------------------------------------------------------------------------
def test_a_full_queue_is_a_503_with_retry_after(tmp_path):
    gen = EchoGenerator(delay_s=0.5)
    app = create_app(gen, serve_dir=tmp_path, settings=ServeSettings(max_batch=1, max_queue=2))
    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(8) as pool:
            rs = list(pool.map(lambda i: _post(url, {"model": "tao", "messages": CHAT}), range(8)))
        refused = app.state.gateway.batcher.stats["refused_full"]
        metrics = httpx.get(url + "/metrics").text
    busy = [r for r in rs if r.status_code == 503]
    assert busy and len(busy) == refused and all(r.json()["error"]["code"] == "overloaded" for r in busy)
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in busy)
    assert sum(r.status_code == 200 for r in rs) >= 3, "the queue's capacity (plus the running batch) was served"
    assert f'tao_batcher{{stat="refused_full"}} {refused}' in metrics


def _send_and_hang_up(url: str, body: dict, wait_s: float) -> None:
    """A raw HTTP client that sends a request and closes the connection before any answer."""
    u = urlparse(url)
    data = json.dumps(body).encode()
    with socket.create_connection((u.hostname, u.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"content-length: %d\r\n\r\n%s" % (len(data), data))
        time.sleep(wait_s)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_is_not_generated_for(tmp_path, stream):
    gen = EchoGenerator(delay_s=1.0)
    app = create_app(gen, serve_dir=tmp_path, settings=ServeSettings(max_batch=1))
    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(2) as pool:
            busy = pool.submit(_post, url, {"model": "tao", "messages": [{"role": "user", "content": "first"}]})
            time.sleep(0.3)  # the first request is generating; the next ones queue behind it
            for i in range(3):
                _send_and_hang_up(url, {"model": "tao", "stream": stream,
                                        "messages": [{"role": "user", "content": f"gone {i}"}]}, 0.1)
            assert busy.result().status_code == 200
        time.sleep(1.5)
        after = _post(url, {"model": "tao", "messages": [{"role": "user", "content": "last"}]})
        stats = dict(app.state.gateway.batcher.stats)
        metrics = httpx.get(url + "/metrics").text
    assert after.status_code == 200
    assert stats["cancelled_queued"] == 3 and gen.batches == [1, 1], "only 'first' and 'last' were generated"
    assert "tao_cancelled_total 3" in metrics
    rows = {json.loads(r["messages"])[0]["content"]: r for r in read_rows(tmp_path)}
    assert [rows[f"gone {i}"]["status"] for i in range(3)] == [499] * 3


# --- fail-closed auth ------------------------------------------------------------------------------------
def test_revoking_the_last_key_refuses_everyone_instead_of_turning_auth_off(tmp_path):
    key = add_key(tmp_path, "only")
    app = create_app(EchoGenerator(), serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        assert _post(url, {"model": "tao", "messages": CHAT}, key).status_code == 200
        revoke_key(tmp_path, "only")
        after = [_post(url, {"model": "tao", "messages": CHAT}, k) for k in (None, key, "sk-anything")]
        (tmp_path / "keys.json").unlink()  # deleting the file does not open the server either
        deleted = _post(url, {"model": "tao", "messages": CHAT})
        models = httpx.get(url + "/v1/models")
    assert [r.status_code for r in after] == [401, 401, 401] and deleted.status_code == 401
    assert models.status_code == 401
    assert "no API keys" in after[0].json()["error"]["message"]
    assert [r["key_id"] for r in read_rows(tmp_path)] == ["only"], "refused requests are not logged"


def test_auth_required_without_a_keys_file_and_off_only_when_asked(tmp_path):
    with serve_in_thread(create_app(EchoGenerator(), serve_dir=tmp_path / "a",
                                    settings=ServeSettings(auth=True))) as url:
        assert _post(url, {"model": "tao", "messages": CHAT}).status_code == 401
    add_key(tmp_path / "b", "k")
    with serve_in_thread(create_app(EchoGenerator(), serve_dir=tmp_path / "b",
                                    settings=ServeSettings(auth=False))) as url:
        assert _post(url, {"model": "tao", "messages": CHAT}).status_code == 200
    assert [r["key_id"] for r in read_rows(tmp_path / "b")] == ["anonymous"]


def test_a_corrupt_keys_file_stops_startup_and_while_serving_gives_a_json_503(tmp_path):
    key = add_key(tmp_path, "k")
    good = (tmp_path / "keys.json").read_text()
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(TaoError, match="not a keys file"):
        create_app(EchoGenerator(), serve_dir=tmp_path)
    (tmp_path / "keys.json").write_text(good)
    app = create_app(EchoGenerator(), serve_dir=tmp_path)
    with serve_in_thread(app) as url:
        assert _post(url, {"model": "tao", "messages": CHAT}, key).status_code == 200
        Path(tmp_path / "keys.json").write_text('{"keys": [{"id": "k"}]}')  # no hash: unreadable
        broken = [_post(url, {"model": "tao", "messages": CHAT}, k) for k in (key, None)]
        models = httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"})
        (tmp_path / "keys.json").write_text(good)
        healed = _post(url, {"model": "tao", "messages": CHAT}, key)
    for r in (*broken, models):
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        assert r.json()["error"]["code"] == "auth_unavailable"
    assert healed.status_code == 200
