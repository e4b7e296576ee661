"""The ``openai`` backend over real HTTP: the official client against the real gateway on loopback, with faults
injected by a test middleware (``tests/endpoint_faults.py``)."""

from __future__ import annotations

import time

import pytest

from opentao.generate.backend import Generator, GenRequest
from opentao.generate.openai_api import EndpointError, OpenAIBackend
from opentao.testing import free_port
from tests.helpers.endpoint_faults import serve_model

MSG = [{"role": "user", "content": "Say something."}]


def _req(i: int = 0, n: int = 6) -> GenRequest:
    return GenRequest([{"role": "user", "content": f"Say something {i}."}], 0.0, n)


def _backend(url: str, **kw) -> OpenAIBackend:
    kw.setdefault("backoff_s", 0.01)
    return OpenAIBackend(url, **kw)


def test_generates_and_counts_tokens(tiny_model_dir):
    with serve_model(tiny_model_dir) as srv:
        b = _backend(srv.base_url, concurrency=3)
        assert isinstance(b, Generator)
        outs = b.generate([_req(i) for i in range(5)])
        assert b.model == "tiny"  # taken from /v1/models
    assert len(outs) == 5 and all(isinstance(o.text, str) and 0 < o.num_tokens <= 6 for o in outs)
    s = b.stats
    assert s.requests == 5 and s.calls == 5 and s.retries == 0 and s.errors == 0
    assert s.completion_tokens == sum(o.num_tokens for o in outs)
    assert s.prompt_tokens > 5 * 5  # a chat template around each short prompt
    assert srv.state.requests == 5


def test_greedy_matches_local_generation(tiny_model_dir):
    from opentao.generate.hf import HFGenerator
    from opentao.models import load_model

    model, tok = load_model(str(tiny_model_dir), dtype="fp32")
    local = HFGenerator(model, tok).generate([_req(1, 8)])[0]
    with serve_model(tiny_model_dir) as srv:
        remote = _backend(srv.base_url).generate([_req(1, 8)])[0]
    assert remote.text == local.text and remote.num_tokens == local.num_tokens


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_transient_errors_then_succeeds(tiny_model_dir, status):
    with serve_model(tiny_model_dir, fail_first=2, fail_status=status) as srv:
        b = _backend(srv.base_url, max_retries=3)
        out = b.generate([_req()])[0]
    assert out.num_tokens > 0
    assert b.stats.calls == 3 and b.stats.retries == 2 and b.stats.errors == 0
    assert srv.state.requests == 3


def test_gives_up_after_retries(tiny_model_dir):
    with serve_model(tiny_model_dir, fail_every=True, fail_status=429) as srv:
        b = _backend(srv.base_url, max_retries=2, max_consecutive_failures=10)
        assert b.try_generate([_req(0), _req(1)]) == [None, None]  # a judge abstains
        assert b.stats.errors == 2 and b.stats.calls == 6
        with pytest.raises(EndpointError, match="gave up on a request"):
            b.generate([_req()])  # a generator must not lose samples silently


def test_circuit_breaker_on_a_broken_endpoint(tiny_model_dir):
    with serve_model(tiny_model_dir, fail_every=True, fail_status=500) as srv:
        b = _backend(srv.base_url, max_retries=0, max_consecutive_failures=3, concurrency=1)
        with pytest.raises(EndpointError, match="failed 3 requests in a row"):
            b.try_generate([_req(i) for i in range(10)])
        assert srv.state.requests == 3


def test_endpoint_down_is_a_clear_error():
    b = _backend(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=1)
    with pytest.raises(EndpointError, match="unreachable"):
        b.try_generate([_req()])
    assert b.stats.calls == 2


def test_timeout_is_honoured(tiny_model_dir):
    with serve_model(tiny_model_dir, delay_s=1.5) as srv:
        b = _backend(srv.base_url, model="tiny", timeout_s=0.3, max_retries=1)
        t0 = time.perf_counter()
        assert b.try_generate([_req()]) == [None]
        elapsed = time.perf_counter() - t0
    assert elapsed < 1.4, f"two 0.3 s attempts took {elapsed:.2f} s"
    assert b.stats.calls == 2 and b.stats.errors == 1


def test_wrong_model_and_bad_url_are_clear_errors(tiny_model_dir):
    from opentao.errors import TaoError

    with pytest.raises(TaoError, match="base_url must be an http"):
        OpenAIBackend("localhost:8000")
    with serve_model(tiny_model_dir) as srv:
        b = _backend(srv.base_url.removesuffix("/v1"), model="tiny")  # forgot /v1 → 404
        with pytest.raises(EndpointError, match="404"):
            b.try_generate([_req()])


def test_a_rejected_request_abstains_without_retries(tiny_model_dir):
    with serve_model(tiny_model_dir, fail_first=1, fail_status=400) as srv:
        b = _backend(srv.base_url, model="tiny", max_retries=3, concurrency=1)
        first, second = b.try_generate([_req(0), _req(1)])
    assert first is None and second is not None
    assert b.stats.calls == 2 and b.stats.retries == 0 and b.stats.errors == 1
