"""Unit tests of the pure parts: config, prompt files, run store, strategies, example building."""

from __future__ import annotations

import json

import pytest

from opentao.config import load_config
from opentao.data import load_prompts
from opentao.errors import TaoError
from opentao.generate.strategies import extract, final_answer, plan_slots, source_messages
from opentao.records import Candidate, Prompt, Score
from opentao.store import RunStore
from opentao.train.examples import build_examples
from tests.helpers.files import write_jsonl


# --- config -----------------------------------------------------------------------------------------
def test_config_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: some/model\ngenerate:\n  k: 3\n")
    cfg = load_config(p, ["generate.k=8", "train.method=dpo", "generate.temperatures=[0.5, 0.9]"], run_dir="x")
    assert cfg.generate.k == 8 and cfg.train.method == "dpo" and cfg.generate.temperatures == [0.5, 0.9]
    assert cfg.model == "some/model" and cfg.run_dir == "x"


@pytest.mark.parametrize("override,needle", [
    ("generate.kk=3", "generate.kk"),
    ("train.method=ppo", "train.method"),
    ("generate.k=0", "generate.k"),
    ("generate.strategies=[beam]", "generate.strategies"),
])
def test_config_rejects_typos_and_bad_values(override, needle):
    with pytest.raises(TaoError, match=needle.replace(".", r"\.")):
        load_config(None, [override])


def test_config_missing_file(tmp_path):
    with pytest.raises(TaoError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


# --- prompt files -------------------------------------------------------------------------------------
def test_load_prompts_formats(tmp_path):
    rows = [{"prompt": "a?", "label": "GOLD"}, {"messages": [{"role": "system", "content": "s"},
                                                             {"role": "user", "content": "b?"}], "id": "x"}]
    ps = load_prompts(write_jsonl(tmp_path / "p.jsonl", rows))
    assert [p.messages[-1]["content"] for p in ps] == ["a?", "b?"]
    assert ps[1].prompt_id == "x" and len(ps[0].prompt_id) == 16
    assert "GOLD" not in json.dumps([p.to_row() for p in ps])  # labels are never read

    (tmp_path / "p.csv").write_text('prompt,answer\n"hello, there",42\n', encoding="utf-8")
    assert load_prompts(tmp_path / "p.csv")[0].messages == [{"role": "user", "content": "hello, there"}]

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["q1", "q2"]}), tmp_path / "p.parquet")
    assert len(load_prompts(tmp_path / "p.parquet")) == 2


def test_multi_turn_prompt(tmp_path):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and now?"}]
    p = load_prompts(write_jsonl(tmp_path / "p.jsonl", [{"messages": msgs}]))[0]
    assert p.messages == msgs


@pytest.mark.parametrize("name,content,needle", [
    ("missing.jsonl", None, "not found"),
    ("empty.jsonl", b"", "empty"),
    ("bad.jsonl", b'{"text": "x"}\n', "no 'prompt' or 'messages' column"),
    ("bad8.jsonl", b'{"prompt": "caf\xe9"}\n', "UTF-8"),
    ("broken.jsonl", b'{"prompt": \n', "invalid JSON"),
    ("p.txt", b"hello", "unsupported file type"),
    ("turn.jsonl", b'{"messages": [{"role": "assistant", "content": "x"}]}\n', "last message"),
    ("dup.jsonl", b'{"prompt": "a", "id": 1}\n{"prompt": "b", "id": 1}\n', "duplicate prompt id"),
])
def test_load_prompts_bad_input(tmp_path, name, content, needle):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TaoError, match=needle):
        load_prompts(path)


def test_huge_prompt_rejected(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [{"prompt": "x" * 1_000_000}])
    with pytest.raises(TaoError, match="over the limit"):
        load_prompts(path)


# --- store ------------------------------------------------------------------------------------------
def test_store_parts_and_queries(tmp_path):
    store = RunStore(tmp_path / "run")
    scores = [Score("p1", "p1#0", "combined", 1.0, 1), Score("p1", "p1#1", "combined", None, 1)]
    assert store.write_part("scores", "r1-00000", scores, Score.SCHEMA) == 2
    assert store.has_part("scores", "r1-00000") and not store.has_part("scores", "r1-00001")
    rows = store.read("scores", 1)
    assert [r["score"] for r in rows] == [1.0, None]
    assert store.query("SELECT count(*) AS n FROM scores WHERE score IS NULL")[0]["n"] == 1
    assert store.counts()["scores"] == 2 and store.counts()["candidates"] == 0
    assert not list((tmp_path / "run").rglob(".part-*"))  # no temp files left behind


def test_store_failed_write_leaves_nothing(tmp_path):
    store = RunStore(tmp_path / "run")

    class Boom(Score):
        def to_row(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write_part("scores", "r1-00000", [Boom("p", "c", "s", 1.0)], Score.SCHEMA)
    assert store.parts("scores") == []


# --- strategies -------------------------------------------------------------------------------------
def test_plan_slots_cover_strategies_and_temperatures():
    slots = plan_slots(4, ["plain", "cot"], [0.7, 1.0], 2)
    assert [(s.strategy, s.temperature) for s in slots] == [("plain", 0.7), ("cot", 0.7), ("plain", 1.0),
                                                              ("cot", 1.0)]
    assert [s.temperature for s in plan_slots(3, ["plain"], [0.5, 1.0], 0)] == [0.5, 1.0, 0.5]


def test_source_messages_per_strategy():
    msgs = [{"role": "system", "content": "old"}, {"role": "user", "content": "Q"}]
    slot_cot, slot_sys = plan_slots(2, ["cot", "system"], [1.0], 1)
    cot = source_messages(msgs, slot_cot, ["S"])
    assert cot[-1]["content"].startswith("Q") and "Final answer" in cot[-1]["content"]
    assert msgs[-1]["content"] == "Q"  # the plain prompt is untouched
    sys_msgs = source_messages(msgs, slot_sys, ["S"])
    assert sys_msgs[0] == {"role": "system", "content": "S"} and len(sys_msgs) == 2


def test_extraction_trains_on_final_answer_only():
    text = "First, count rows.\nThen filter.\nFinal answer: 42."
    assert final_answer(text) == "42."
    response, answer = extract(text, "cot", "final_answer")
    assert response == "42." and answer == "42"
    resp, ans = extract("Reasoning...\nFinal answer: SELECT a FROM t;", "cot", "sql")
    assert resp == ans and ans.upper().startswith("SELECT A FROM T")


# --- examples ---------------------------------------------------------------------------------------
def _cand(pid, i, resp):
    return Candidate(pid, f"{pid}#{i}", "plain", [], resp, resp, resp)


def test_rft_keeps_best_above_threshold_and_prefers_short():
    prompts = {"p": Prompt("p", [{"role": "user", "content": "Q"}]), "q": Prompt("q", [{"role": "user",
                                                                                         "content": "R"}])}
    cands = [_cand("p", 0, "long answer"), _cand("p", 1, "short"), _cand("p", 2, "bad"), _cand("q", 0, "meh")]
    rewards = {"p#0": 1.0, "p#1": 1.0, "p#2": 0.0, "q#0": 0.5}
    ex = build_examples(prompts, cands, rewards, method="rft", threshold=1.0)
    assert [(e.prompt_id, e.chosen) for e in ex] == [("p", "short")]
    assert ex[0].prompt_messages == [{"role": "user", "content": "Q"}]
    ex2 = build_examples(prompts, cands, rewards, method="rft", threshold=0.5, max_per_prompt=2)
    assert [(e.prompt_id, e.chosen) for e in ex2] == [("p", "short"), ("p", "long answer"), ("q", "meh")]


def test_dpo_pairs_need_a_margin():
    prompts = {"p": Prompt("p", [{"role": "user", "content": "Q"}]), "q": Prompt("q", [{"role": "user",
                                                                                         "content": "R"}])}
    cands = [_cand("p", 0, "good"), _cand("p", 1, "bad"), _cand("q", 0, "x"), _cand("q", 1, "y")]
    rewards = {"p#0": 1.0, "p#1": 0.0, "q#0": 0.6, "q#1": 0.5}
    ex = build_examples(prompts, cands, rewards, method="dpo", min_margin=0.5)
    assert len(ex) == 1 and (ex[0].chosen, ex[0].rejected) == ("good", "bad")
    assert build_examples(prompts, cands, {"p#0": None, "p#1": None}, method="dpo") == []


def test_table_parts_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from opentao.records import Prompt
    from opentao.store import RunStore

    store = RunStore(tmp_path / "run")
    store.write_part("prompts", "r1", [Prompt("a", [{"role": "user", "content": "x"}], 1)], Prompt.SCHEMA)
    store.write_summary("s", {"x": 1})
    mask = os.umask(0)
    os.umask(mask)
    for path in (store.part_path("prompts", "r1"), store.summary_path("s")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_auto_dtype_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    import torch

    from opentao.models import cpu_has_fast_bf16, pick_dtype

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not cpu_has_fast_bf16()
    assert pick_dtype("auto", cpu) == torch.float32  # generic bf16 GEMM: far slower than fp32 on AVX2 CPUs
    assert pick_dtype("auto", gpu) == torch.bfloat16
    assert pick_dtype("bf16", cpu) == torch.bfloat16  # an explicit choice is kept
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_has_fast_bf16() and pick_dtype("auto", cpu) == torch.bfloat16
    with pytest.raises(TaoError, match="unknown dtype"):
        pick_dtype("int3", cpu)


def test_training_autocasts_to_bf16_only_for_a_bf16_model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from opentao.train.trainer import precision_args

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    # TRL's default bf16=True would autocast an fp32 model's matmuls to bf16 on CPU (slow without native bf16)
    assert precision_args(model) == {"bf16": False, "fp16": False}
    assert precision_args(model.to(torch.bfloat16)) == {"bf16": True, "fp16": False}
