"""Chat completions with ``logprobs`` / ``top_logprobs`` on the real gateway, through the official ``openai`` client."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from opentao.serve.app import create_app
from opentao.serve.log import read_rows
from opentao.testing import EchoGenerator, serve_in_thread

CHAT = [{"role": "user", "content": "Name three colours."}]


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _check_token(t, k: int) -> None:
    """What holds for every token whatever the sampler: a probability, sorted alternatives, a distribution."""
    assert t.logprob <= 0 and len(t.top_logprobs) == k
    tops = [a.logprob for a in t.top_logprobs]
    assert tops == sorted(tops, reverse=True), "top_logprobs must be sorted, most likely first"
    assert all(v <= 0 for v in tops) and sum(math.exp(v) for v in tops) <= 1 + 1e-6
    if k:
        assert t.logprob <= tops[0] + 1e-6, "nothing is more likely than the top-1"
    for entry in (t, *t.top_logprobs):
        assert isinstance(entry.bytes, list) and all(0 <= b < 256 for b in entry.bytes)
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token


def test_greedy_tokens_are_the_top_1_and_logprobs_are_a_distribution(tmp_path, other_model_dir):  # noqa: F811
    with serve_in_thread(create_app(str(other_model_dir), serve_dir=tmp_path)) as url:
        c = _client(url)
        r = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=8, temperature=0, logprobs=True,
                                      top_logprobs=5)
        plain = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=8, temperature=0)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens >= 1
    assert r.choices[0].message.content == plain.choices[0].message.content, "asking for logprobs changes nothing"
    assert plain.choices[0].logprobs is None
    for t in content:
        _check_token(t, 5)
        top1, top2 = t.top_logprobs[0], t.top_logprobs[1]
        assert t.logprob == pytest.approx(top1.logprob, abs=1e-5), "greedy decoding picks the most likely token"
        if top1.logprob > top2.logprob + 1e-4:  # no tie at the top
            assert t.token == top1.token and t.bytes == top1.bytes
    row = next(r_ for r_ in read_rows(tmp_path) if r_["request_id"] == r.id)
    assert json.loads(row["params"])["top_logprobs"] == 5


def test_sampled_logprobs_are_the_raw_distribution_not_the_samplers(other_model_dir):  # noqa: F811
    """The first token's alternatives do not depend on the request's temperature: raw logits, temperature 1."""
    with serve_in_thread(create_app(str(other_model_dir))) as url:
        c = _client(url)
        hot = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=6, temperature=1.5, seed=3,
                                        logprobs=True, top_logprobs=20, n=3)
        cold = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=1, temperature=0, logprobs=True,
                                         top_logprobs=20)
        none = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=2, logprobs=True)
    reference = [(a.token, a.logprob) for a in cold.choices[0].logprobs.content[0].top_logprobs]
    for choice in hot.choices:
        assert len(choice.logprobs.content) >= 1
        for t in choice.logprobs.content:
            _check_token(t, 20)
        first = choice.logprobs.content[0].top_logprobs
        assert [a.logprob for a in first] == pytest.approx([v for _, v in reference], abs=1e-3)
    assert all(t.top_logprobs == [] and t.logprob <= 0 for t in none.choices[0].logprobs.content)


def test_logprob_requests_batched_with_others_get_their_own_answers(other_model_dir):  # noqa: F811
    with serve_in_thread(create_app(str(other_model_dir))) as url:
        alone = _client(url).chat.completions.create(model="tao", messages=CHAT, max_tokens=5, temperature=0,
                                                     logprobs=True, top_logprobs=2)

        def call(i: int):
            kw = dict(logprobs=True, top_logprobs=2) if i % 2 == 0 else {}
            msgs = CHAT if i % 2 == 0 else [{"role": "user", "content": f"other question {i}"}]
            return _client(url).chat.completions.create(model="tao", messages=msgs, max_tokens=5, temperature=0, **kw)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
    want = [(t.token, t.logprob) for t in alone.choices[0].logprobs.content]
    for i, r in enumerate(results):
        if i % 2:
            assert r.choices[0].logprobs is None
        else:
            got = [(t.token, t.logprob) for t in r.choices[0].logprobs.content]
            assert [t for t, _ in got] == [t for t, _ in want]
            assert [v for _, v in got] == pytest.approx([v for _, v in want], abs=1e-3)


def test_streamed_logprobs(other_model_dir):  # noqa: F811
    with serve_in_thread(create_app(str(other_model_dir))) as url:
        c = _client(url)
        full = c.chat.completions.create(model="tao", messages=CHAT, max_tokens=5, temperature=0, logprobs=True,
                                         top_logprobs=3)
        chunks = list(c.chat.completions.create(model="tao", messages=CHAT, max_tokens=5, temperature=0,
                                                logprobs=True, top_logprobs=3, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    streamed = [t for ch in chunks if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.content]
    assert text == full.choices[0].message.content
    assert [t.token for t in streamed] == [t.token for t in full.choices[0].logprobs.content]


@pytest.mark.parametrize("body,needle", [
    ({"top_logprobs": 3}, "top_logprobs needs logprobs: true"),
    ({"logprobs": False, "top_logprobs": 0}, "top_logprobs needs logprobs: true"),
    ({"logprobs": True, "top_logprobs": 21}, "less than or equal to 20"),
    ({"logprobs": True, "top_logprobs": -1}, "greater than or equal to 0"),
    ({"logprobs": "yes"}, "'logprobs'"),
    ({"logprobs": True, "top_logprobs": 2.5}, "'top_logprobs'"),
])
def test_bad_logprob_parameters_get_one_clear_400(body, needle):
    with serve_in_thread(create_app(EchoGenerator())) as url:
        r = httpx.post(url + "/v1/chat/completions", json={"model": "tao", "messages": CHAT, **body})
    assert r.status_code == 400 and needle in r.json()["error"]["message"], r.text


def test_backends_without_logprobs_and_legacy_completions_refuse(tiny_model_dir):
    with serve_in_thread(create_app(EchoGenerator())) as url:
        r = httpx.post(url + "/v1/chat/completions", json={"model": "tao", "messages": CHAT, "logprobs": True})
        assert r.status_code == 400 and "not supported by this server's model backend" in r.text
        spec = httpx.get(url + "/openapi.json").json()["components"]["schemas"]["ChatCompletionRequest"]
    props = spec["properties"]
    assert {"type": "boolean"} in props["logprobs"]["anyOf"], "the spec must let clients ask for logprobs"
    assert {"maximum": 20, "minimum": 0, "type": "integer"} in props["top_logprobs"]["anyOf"]
    assert spec["then"]["properties"]["logprobs"] == {"const": True} and spec["if"]["required"] == ["top_logprobs"]
    with serve_in_thread(create_app(str(tiny_model_dir))) as url:
        r = httpx.post(url + "/v1/completions", json={"model": "tao", "prompt": "x", "logprobs": 2})
    assert r.status_code == 400 and "logprobs" in r.json()["error"]["message"]


def test_token_bytes_are_exact_even_inside_a_utf8_character(tiny_model_dir):
    from opentao.generate.hf import TokenText
    from opentao.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    text = "naïve 🙂 日本"
    ids = tok.encode(text, add_special_tokens=False)
    tt = TokenText(tok)
    assert tt.decoder is not None, "SmolLM2's tokenizer is byte-level BPE"
    pieces = [tt(i) for i in ids]
    assert b"".join(bytes(raw) for _, raw in pieces).decode("utf-8") == text
    assert any("\ufffd" in t for t, _ in pieces), "an emoji spans several tokens, each a partial character"
    assert tt(tok.convert_tokens_to_ids("<|im_end|>"))[0] == "<|im_end|>"
