"""Engine names and the Ray engine's pieces that need no Ray instance: name parsing, the missing-Ray error,
actor errors surfacing as one TaoError line, scorer counters summed over actors."""

from __future__ import annotations

import sys

import pytest

from opentao.config import ENGINES, RayConfig, load_config
from opentao.errors import TaoError
from opentao.generate.engines import local_engine, on_ray, split_engine
from opentao.generate.ray_engine import _tao_error, ensure_ray, merge_counters


@pytest.mark.parametrize("engine, ray, inner", [
    ("hf", False, "hf"), ("auto", False, "auto"), ("openai", False, "openai"), ("ray", True, "auto"),
    ("ray-auto", True, "auto"), ("ray-hf", True, "hf"), ("ray-vllm", True, "vllm"), ("ray-openai", True, "openai"),
])
def test_engine_names(engine, ray, inner):
    assert engine in ENGINES
    assert on_ray(engine) is ray
    assert local_engine(engine) == inner


def test_split_engine_resolves_and_refuses():
    assert split_engine("ray-hf") == (True, "hf")
    assert split_engine("openai") == (False, "openai")
    with pytest.raises(TaoError, match="unknown engine"):
        split_engine("ray-tpu")
    with pytest.raises(TaoError, match="generate.engine"):
        load_config(None, ["generate.engine=ray-tpu"])


def test_missing_ray_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(TaoError, match=r"pip install 'opentao\[ray\]'"):
        ensure_ray(RayConfig())


def test_actor_errors_are_found_in_the_chain_or_the_traceback_text():
    class Wrapper(Exception):
        pass

    try:
        try:
            raise TaoError("needs a base_url")
        except TaoError as inner:
            raise Wrapper("ray wrapped it") from inner
    except Wrapper as exc:
        assert _tao_error(exc) == "needs a base_url"
    # an actor's __init__ failure: Ray keeps only the traceback text
    text = ("The actor died because of an error raised in its creation task, \x1b[36mray::MapWorker()\x1b[39m\n"
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
            "opentao.errors.TaoError: generate.engine 'openai' needs generate.openai.base_url\n")
    assert _tao_error(RuntimeError(text)) == "generate.engine 'openai' needs generate.openai.base_url"
    assert _tao_error(RuntimeError("ValueError: not ours")) is None


def test_scorer_counters_sum_over_actors():
    a = {"judge": {"judge_requests": 3, "endpoint": {"calls": 4, "seconds": 1.5}}, "vote": {}}
    b = {"judge": {"judge_requests": 2, "endpoint": {"calls": 2, "seconds": 0.5}}, "vote": {"degenerate_x": 1}}
    assert merge_counters([a, b]) == {"judge": {"judge_requests": 5, "endpoint": {"calls": 6, "seconds": 2.0}},
                                      "vote": {"degenerate_x": 1}}
    assert merge_counters([]) == {}
