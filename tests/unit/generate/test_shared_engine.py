"""SharedEngine: one vLLM start-up for the base evaluation and round 1's sampling (both run the base model)."""

from __future__ import annotations

import json

import pytest

from opentao.config import load_config
from opentao.generate import engines
from opentao.generate.engines import SharedEngine
from opentao.pipeline import rounds
from opentao.testing import EchoGenerator


class ClosingEcho(EchoGenerator):
    def __init__(self):
        super().__init__("echo")
        self.closed = 0

    def close(self):
        self.closed += 1


def test_shared_engine_builds_once_lends_and_closes_once():
    built: list[ClosingEcho] = []
    shared = SharedEngine(lambda: built.append(ClosingEcho()) or built[-1])
    shared.close()
    assert built == []  # never used, never started
    a, b = shared(), shared()
    assert len(built) == 1 and shared.builds == 1
    engines.close_generator(a)  # a borrower's close leaves the engine open
    assert built[0].closed == 0
    assert [o.text for o in b.generate([])] == [] and b.batches is built[0].batches
    shared.close()
    shared.close()
    assert built[0].closed == 1


def _cfg(tmp_path, *overrides):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"question {i}?"}]} for i in range(3)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = tmp_path / "test.jsonl"
    gold = [{**r, "id": f"t{i}", "kind": "yesno", "answer": "yes"} for i, r in enumerate(rows)]
    test.write_text("".join(json.dumps(r) + "\n" for r in gold))
    return load_config(None, ["generate.k=2", "generate.prompts_per_part=2", "score.scorers=[{type: length_penalty, max_length: 50}]",
                              "eval.task=docqa", *overrides],
                       run_dir=str(tmp_path / "run"), model="bundled", prompts=str(prompts),
                       **{"eval.data": str(test)})


@pytest.mark.parametrize("overrides, shared", [
    (["generate.engine=vllm", "eval.engine=vllm"], True),
    (["generate.engine=auto", "eval.engine=auto"], True),  # auto = vllm here (installed)
    (["generate.engine=hf", "eval.engine=vllm"], False),
    (["generate.engine=vllm", "eval.engine=hf"], False),
    (["generate.engine=ray-vllm", "eval.engine=vllm"], False),
    (["generate.engine=vllm", "eval.engine=vllm", "generate.vllm.max_model_len=2048"], False),  # not eval's engine
])
def test_base_engine_only_when_both_stages_would_build_the_same_vllm_engine(monkeypatch, tmp_path, overrides, shared):
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    monkeypatch.setenv("OPENTAO_ENGINE", "")
    assert isinstance(rounds.base_engine(_cfg(tmp_path, *overrides)), SharedEngine) is shared


def test_base_engine_needs_an_eval_set(monkeypatch, tmp_path):
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    cfg = _cfg(tmp_path, "generate.engine=vllm", "eval.engine=vllm")
    assert rounds.base_engine(cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"data": None})})) is None


class _Stop(Exception):
    pass


def test_run_rounds_starts_one_engine_for_base_eval_and_round_one_and_closes_it_before_training(
        monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setattr(engines, "vllm_installed", lambda: True)
    monkeypatch.setenv("OPENTAO_ENGINE", "")
    built: list[tuple[str, ClosingEcho]] = []

    def fake_build(gen, model_name, **kwargs):
        assert kwargs["backend"] == "vllm"
        built.append((model_name, ClosingEcho()))
        return built[-1][1]

    monkeypatch.setattr(engines, "build_generator", fake_build)

    def train_sees(*args, **kwargs):
        assert [g.closed for _, g in built] == [1]  # closed before training starts
        raise _Stop

    monkeypatch.setattr(rounds, "stage_train", train_sees)
    cfg = _cfg(tmp_path, "generate.engine=vllm", "eval.engine=vllm").model_copy(update={"model": str(tiny_model_dir)})
    with pytest.raises(_Stop):
        rounds.run_rounds(cfg, report=lambda *_: None)
    [(model, gen)] = built
    assert model == str(tiny_model_dir)
    assert gen.batches[0] == 3 and sum(gen.batches[1:]) == 3 * 2  # the 3 greedy base answers, then 3 prompts x K=2
    store = rounds.RunStore(tmp_path / "run")
    assert store.count("candidates") == 6 and store.count("eval_results") == 3
    base = store.read_summary("eval-r0-base")
    assert base["engine"] == "vllm" and base["parameters"] > 0 and base["n"] == 3
