"""Stage progress: the status text (rates, totals, ETA), the plain log lines off a terminal, the training values."""

from __future__ import annotations

import pytest

from opentao import progress
from opentao.progress import format_eta, format_status, progress_bar
from opentao.train.progress import TrainProgress, train_values


def test_format_status_rates_totals_eta():
    s = format_status(4, 10, 2.0, unit="prompts", counts={"tokens": 300, "abstentions": 3}, rates=("tokens",),
                      totals=("abstentions",), values={"loss": 0.5})
    # 4 prompts in 2 s → 2/s; 300 tokens / 2 s; 6 left at 2/s → 3 s
    assert s == "2 prompts/s, 150 tokens/s, abstentions 3, loss 0.5, ETA 3 s"
    assert format_status(0, 10, 0.0, rates=("tokens",)) == "– tokens/s, ETA –"
    assert format_status(10, 10, 0.001, unit="groups") == "10,000 groups/s, ETA 0 s"
    assert format_eta(59.6) == "1 min 00 s" and format_eta(3725) == "1 h 02 min" and format_eta(None) == "–"


def test_plain_lines_off_a_terminal(monkeypatch, capsys):
    lines = []
    monkeypatch.setattr(progress.console, "print", lambda text, **kw: lines.append(text))
    monkeypatch.setattr(type(progress.console), "is_terminal", property(lambda self: False))
    with progress_bar("generate r1", total=3, every_s=3600, unit="prompts", rates=("tokens",)) as advance:
        advance(1, tokens=10)  # under every_s: no line yet
        advance.set(loss=1.0)  # a value alone prints nothing
        advance(2, tokens=20)  # finished: always a line
    assert len(lines) == 1
    assert lines[0].startswith("generate r1: 3/3 prompts, ") and "tokens/s" in lines[0] and "loss 1" in lines[0]
    assert "ETA 0 s" in lines[0]
    assert advance.counts == {"tokens": 30}


def test_train_values_pick_loss_rewards_advantages_step_time():
    logs = {"loss": 0.123456, "learning_rate": 1e-4, "rewards/margins": 0.5, "rewards/accuracies": 0.75,
            "reward": 0.3, "reward_std": 0.1, "advantages/mean": 0.0, "epoch": 1.0}
    assert train_values(logs, 2.345) == {"loss": 0.1235, "reward margins": 0.5, "reward accuracies": 0.75,
                                         "reward": 0.3, "reward_std": 0.1, "advantages/mean": 0.0, "s/step": 2.35}
    assert train_values({"train_runtime": 3.0}, None) == {}


def test_train_progress_callback_counts_steps(monkeypatch):
    monkeypatch.setattr(type(progress.console), "is_terminal", property(lambda self: False))
    monkeypatch.setattr(progress.console, "print", lambda *a, **k: None)

    class State:
        max_steps, global_step = 4, 0

    cb = TrainProgress("train round-1")
    cb.on_train_begin(None, State(), None)
    adv = cb._advance
    for _ in range(4):
        cb.on_step_end(None, State(), None)
    cb.on_log(None, State(), None, logs={"loss": 1.5})
    assert adv.done == 4 and adv.values["loss"] == 1.5 and adv.values["s/step"] == pytest.approx(0, abs=1.0)
    cb.on_train_end(None, State(), None)
    assert cb._advance is None


def test_training_keeps_its_log_history_and_shows_our_progress(tmp_path, tiny_model_dir, monkeypatch):
    """The trainer's log history reaches the stats (→ summary/train-r<N>.json → the report's training curves),
    and TrainProgress replaced the Trainer's tqdm bar."""
    from transformers.trainer_callback import ProgressCallback

    from opentao.config import TrainConfig
    from opentao.records import TrainExample
    from opentao.train import progress as train_progress
    from opentao.train.trainer import train_model

    seen = []
    real = train_progress.attach_progress

    def spy(trainer, description="train"):
        cb = real(trainer, description)
        seen.append([type(c) for c in trainer.callback_handler.callbacks])
        return cb

    monkeypatch.setattr("opentao.train.trainer.attach_progress", spy)
    examples = [TrainExample(f"p{i}", "sft", [{"role": "user", "content": "Say yes."}], "yes") for i in range(4)]
    cfg = TrainConfig(method="rft", max_steps=2, batch_size=2, save_steps=10, lora_r=4, lora_alpha=8, max_length=64)
    stats = train_model(str(tiny_model_dir), examples, cfg, work_dir=tmp_path / "work", out_dir=tmp_path / "model")
    steps = [h["step"] for h in stats["log_history"] if "loss" in h]
    assert steps == [1, 2]
    assert TrainProgress in seen[0] and ProgressCallback not in seen[0]


def test_rich_bar_on_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    buf = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buf, force_terminal=True, width=200))
    with progress_bar("score r1", total=2, unit="groups", counts=("abstentions",)) as advance:
        advance(1, abstentions=2)
        advance(1, abstentions=1)
    text = buf.getvalue()
    assert "score r1" in text and "2/2" in text and "abstentions 3" in text and "groups/s" in text
