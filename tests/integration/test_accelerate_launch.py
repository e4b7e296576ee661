"""``tao train`` under ``accelerate launch`` (one process, on the CPU, with the shipped ``cpu.yaml``) trains the
same model as the plain in-process stage: same steps, same losses, a published ``models/round-1``. And a
DeepSpeed launch without the ``deepspeed`` package stops with the line that says how to install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opentao.train import distributed
from tests.helpers.runs import hand_made_run

pytestmark = pytest.mark.integration

TRAIN = {  # small enough for a few seconds of training on the tiny model
    "rft": {"train.method": "rft", "train.max_steps": 3, "train.batch_size": 2, "train.threshold": 0.5},
    "grpo": {"train.method": "grpo", "train.max_steps": 2, "train.batch_size": 3, "train.grad_accum": 2},
}
COMMON = {"train.lora_r": 4, "train.lora_alpha": 8, "train.max_length": 64, "dtype": "fp32", "device": "cpu"}


def _launch(config: str, run: Path, model: Path, sets: dict, threads: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(distributed.config_dir() / config),
           "--num_cpu_threads_per_process", str(threads), "-m", "opentao.cli", "train", "--run-dir", str(run),
           "--model", str(model)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = {**os.environ, "HF_HOME": str(run.parent / "hf")}  # no user-level accelerate default_config.yaml
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=run.parent, env=env)


@pytest.mark.parametrize("method", sorted(TRAIN))
def test_train_under_accelerate_launch_is_the_plain_run(tmp_path, tiny_model_dir, method):
    import torch

    from opentao.config import load_config
    from opentao.pipeline import open_run, stage_train

    sets = {**TRAIN[method], **COMMON}
    plain, launched = tmp_path / "plain", tmp_path / "launched"
    for run in (plain, launched):
        hand_made_run(run, n=4)
    cfg = load_config(None, [f"{k}={v}" for k, v in sets.items()], run_dir=str(plain), model=str(tiny_model_dir))
    want = stage_train(open_run(cfg, ("train",)), cfg, 1)

    res = _launch("cpu.yaml", launched, tiny_model_dir, sets, torch.get_num_threads())
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.startswith(f"train: {want['examples']} examples, {want['steps']} steps")  # once: one rank
    assert (launched / "models" / "round-1" / "config.json").is_file()
    got = json.loads((launched / "summary" / "train-r1.json").read_text())
    assert got["method"] == method and got["steps"] == want["steps"] and got["examples"] == want["examples"]
    for key in ("train_loss", "first_loss", "last_loss"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert ([h["loss"] for h in got["log_history"] if "loss" in h]
            == pytest.approx([h["loss"] for h in want["log_history"] if "loss" in h], rel=1e-6))


def test_a_deepspeed_launch_without_deepspeed_says_how_to_install_it(tmp_path, tiny_model_dir):
    if distributed.deepspeed_installed():
        pytest.skip("deepspeed is installed here")
    run = tmp_path / "run"
    hand_made_run(run, n=2)
    res = _launch("deepspeed_zero2.yaml", run, tiny_model_dir, {**TRAIN["rft"], **COMMON}, 1)
    assert res.returncode != 0
    assert "pip3 install deepspeed" in res.stderr  # accelerate's launcher stops before any rank starts
    assert not (run / "models").exists()

    # started without that launcher check (torchrun and the env accelerate would set): our own one error line
    env = {**os.environ, "ACCELERATE_USE_DEEPSPEED": "true"}
    res = subprocess.run([sys.executable, "-m", "opentao.cli", "train", "--run-dir", str(run), "--model",
                          str(tiny_model_dir)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("error:")] == [
        "error: this accelerate config uses DeepSpeed, which is not installed: pip install deepspeed (needs a CUDA "
        "toolkit), or launch with configs/accelerate/ddp.yaml"]
    assert not (run / "tables" / "train_examples").exists()
