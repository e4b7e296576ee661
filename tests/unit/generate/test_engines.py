"""generate.engine: names, what auto resolves to, the factory's errors, and the vLLM backend's pure parts."""

from __future__ import annotations

import pytest

from opentao.config import GenerateConfig, load_config
from opentao.errors import TaoError
from opentao.generate import engines


def test_engine_names_are_validated():
    assert GenerateConfig(engine="ray-vllm").engine == "ray-vllm"
    with pytest.raises(ValueError, match="unknown engine 'vlm'"):
        GenerateConfig(engine="vlm")


@pytest.mark.parametrize("name, installed, env, want", [
    ("hf", True, "", (False, "hf")),
    ("auto", True, "", (False, "vllm")),
    ("auto", False, "", (False, "hf")),
    ("auto", True, "hf", (False, "hf")),
    ("ray", False, "", (True, "hf")),
    ("ray-auto", True, "", (True, "vllm")),
    ("ray-hf", True, "", (True, "hf")),
    ("openai", False, "", (False, "openai")),
    ("ray-openai", False, "", (True, "openai")),
])
def test_split_engine(monkeypatch, name, installed, env, want):
    monkeypatch.setattr(engines, "vllm_installed", lambda: installed)
    monkeypatch.setenv("OPENTAO_ENGINE", env)
    assert engines.split_engine(name) == want


def test_vllm_by_name_without_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setattr(engines, "vllm_installed", lambda: False)
    for name in ("vllm", "ray-vllm"):
        with pytest.raises(TaoError, match=r"opentao\[cpu\]"):
            engines.split_engine(name)
    monkeypatch.setenv("OPENTAO_ENGINE", "vllm")
    with pytest.raises(TaoError, match="needs vLLM"):
        engines.split_engine("auto")


def test_bad_opentao_engine_env(monkeypatch):
    monkeypatch.setenv("OPENTAO_ENGINE", "tgi")
    with pytest.raises(TaoError, match="OPENTAO_ENGINE='tgi'"):
        engines.split_engine("auto")


def test_openai_engine_needs_a_base_url():
    with pytest.raises(TaoError, match="generate.openai.base_url"):
        engines.build_generator(GenerateConfig(engine="openai"), "bundled")


def test_openai_engine_builds_the_endpoint_backend():
    from opentao.generate.openai_api import OpenAIBackend

    gen = GenerateConfig(engine="openai", openai={"base_url": "http://127.0.0.1:9/v1", "model": "m"}, top_p=0.9)
    backend = engines.build_generator(gen, "ignored", seed=7)
    assert isinstance(backend, OpenAIBackend) and backend.top_p == 0.9 and backend.seed == 7


def test_engine_override_from_the_cli_syntax(tmp_path):
    cfg = load_config(None, ["generate.engine=ray-hf", "ray.actors=2", "generate.vllm.max_model_len=1024"])
    assert (cfg.generate.engine, cfg.ray.actors, cfg.generate.vllm.max_model_len) == ("ray-hf", 2, 1024)


def test_close_generator_calls_close_when_there_is_one():
    closed = []

    class WithClose:
        def close(self):
            closed.append(True)

    engines.close_generator(WithClose())
    engines.close_generator(object())  # nothing to close: no error
    assert closed == [True]


def test_request_seeds_are_stable_and_differ_by_place():
    from opentao.generate.vllm import request_seed

    seeds = [request_seed(42, i) for i in range(8)]
    assert len(set(seeds)) == 8  # the K samples of one prompt (one request seed) get different streams
    assert seeds == [request_seed(42, i) for i in range(8)]  # the same on a rerun
    assert request_seed(43, 0) != seeds[0]
    assert all(0 <= s < 2**31 for s in seeds)
    assert request_seed(0, 3) == 958805511  # stable across processes and Python versions (no hash())


def _fake_vllm_memory(monkeypatch, total_gib: float, available_gib: float, node: int = 0, nodes=(0, 1)):
    """vLLM's CPU memory helpers, faked (the test needs neither vLLM nor a NUMA machine)."""
    import sys
    import types

    from opentao.generate import vllm as vllm_backend

    gib = 2**30
    mod = types.ModuleType("vllm.utils.cpu_resource_utils")
    mod.get_visible_memory_node = lambda: list(nodes)
    mod.get_allowed_cpu_list = lambda: [types.SimpleNamespace(numa_node=node)]
    asked: list[int] = []

    def info(n):
        asked.append(n)
        return types.SimpleNamespace(total_memory=int(total_gib * gib), available_memory=int(available_gib * gib))

    mod.get_memory_node_info = info
    for name, m in (("vllm", types.ModuleType("vllm")), ("vllm.utils", types.ModuleType("vllm.utils")),
                    ("vllm.utils.cpu_resource_utils", mod)):
        monkeypatch.setitem(sys.modules, name, m)
    return vllm_backend, asked


def test_cpu_memory_share_keeps_the_default_when_the_node_has_room(monkeypatch):
    vllm_backend, asked = _fake_vllm_memory(monkeypatch, total_gib=16, available_gib=14, node=1)
    assert vllm_backend.cpu_memory_share(0.3) == 0.3
    assert asked == [1]  # the node of the first allowed CPU, as vLLM's worker binds


def test_cpu_memory_share_shrinks_to_what_the_node_has(monkeypatch):
    # the demo's failure: 4.8 of 16.09 GiB available, and 0.3 asks 4.83 GiB
    vllm_backend, _ = _fake_vllm_memory(monkeypatch, total_gib=16.09, available_gib=4.8)
    share = vllm_backend.cpu_memory_share(0.3)
    assert 0 < share < 0.3 and share * 16.09 == pytest.approx(0.8 * 4.8)


def test_cpu_memory_share_refuses_clearly_when_nothing_fits(monkeypatch):
    vllm_backend, _ = _fake_vllm_memory(monkeypatch, total_gib=16, available_gib=1.0)
    with pytest.raises(TaoError, match=r"1\.0 of 16\.0 GiB are available.*generate\.engine: hf"):
        vllm_backend.cpu_memory_share(0.3)


def test_cpu_memory_share_falls_back_to_the_default_without_numa_information(monkeypatch):
    vllm_backend, _ = _fake_vllm_memory(monkeypatch, total_gib=16, available_gib=1.0, node=3, nodes=())
    assert vllm_backend.cpu_memory_share(0.3) == 0.3  # nodes[0] of an empty list: vLLM's own check decides
