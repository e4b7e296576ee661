"""The train method is ``train.method``: the pipeline writes examples of that kind (``rft``, never ``sft``, for
best-of-K fine-tuning) and the trainer dispatches on the config, refusing examples built for another method."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from opentao.config import TrainConfig
from opentao.errors import TaoError
from opentao.records import Candidate, Prompt, TrainExample
from opentao.train.examples import build_examples
from opentao.train.trainer import KINDS, train_model

MSGS = [{"role": "user", "content": "Say yes."}]
SRC = Path(__file__).resolve().parents[3] / "src" / "opentao"


def _cands(n: int = 3) -> list[Candidate]:
    return [Candidate("p", f"p#{i}", "plain", MSGS, r, r, r) for i, r in enumerate(["yes", "no", "maybe"][:n])]


@pytest.mark.parametrize("method", ["rft", "dpo", "grpo"])
def test_examples_are_of_the_configured_kind(method: str) -> None:
    ex = build_examples({"p": Prompt("p", MSGS)}, _cands(), {"p#0": 1.0, "p#1": 0.0, "p#2": 0.5}, method=method)
    assert ex and {e.kind for e in ex} == {method}
    assert method in KINDS[method]


def test_rft_is_the_only_spelling_of_the_method() -> None:
    assert set(KINDS) == {"rft", "dpo", "grpo"}
    assert set(TrainConfig.model_fields["method"].annotation.__args__) == set(KINDS)
    with pytest.raises(ValidationError):
        TrainConfig(method="sft")


def test_no_package_module_writes_an_sft_example() -> None:
    """``sft`` (gold outputs) is a kind the rft trainer accepts, but nothing in the package builds one."""
    writers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TrainExample"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                writers.append((path.name, node.args[1].value))
    assert writers and {kind for _, kind in writers} == {"rft", "dpo", "grpo"}


@pytest.mark.parametrize(("kind", "method"), [("rft", "dpo"), ("sft", "grpo"), ("dpo", "rft"), ("grpo", "rft")])
def test_trainer_dispatches_on_the_config_not_the_examples(tmp_path, kind: str, method: str) -> None:
    examples = [TrainExample(f"p{i}", kind, MSGS, "yes", "no") for i in range(2)]
    with pytest.raises(TaoError, match=f"train.method is '{method}'"):  # refused before any model is loaded
        train_model("no-such-model", examples, TrainConfig(method=method), work_dir=tmp_path / "w",
                    out_dir=tmp_path / "o")
