"""Training under ``accelerate launch``: the shipped launch configs, what is refused, who writes, and the GRPO
loop's split of a global batch between ranks (the gradient DDP averages equals the one-process gradient).

The launches themselves (``accelerate launch ... -m opentao.cli train``) are in
``tests/integration/test_accelerate_launch.py``."""

from __future__ import annotations

import random
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from opentao.config import TrainConfig
from opentao.errors import TaoError
from opentao.train import distributed
from opentao.train.grpo import draw_micro, grpo_loss

REPO = Path(__file__).resolve().parents[3]


def _load(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(distributed.config_dir() / name))


def _launch_args(name: str):
    """What ``accelerate launch --config_file <name> x.py`` resolves the file into (its own parser and checks)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(distributed.config_dir() / name), "x.py"])
    return _validate_launch_command(args)[0]


def test_the_shipped_launch_configs_are_the_documented_ones_and_ship_with_the_package():
    assert sorted(p.name for p in distributed.config_dir().glob("*.yaml")) == sorted(distributed.CONFIGS)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["opentao"]
    for name in distributed.CONFIGS:
        assert any(fnmatch(f"configs/accelerate/{name}", pat) for pat in data), name


@pytest.mark.parametrize("name", distributed.CONFIGS)
def test_every_launch_config_loads_with_accelerates_loader_without_autocast(name: str):
    cfg = _load(name)  # accelerate refuses unknown keys
    assert cfg.mixed_precision == "no"  # opentao's dtype decides the precision
    assert cfg.num_machines == 1 and cfg.machine_rank == 0


def test_ddp_config_is_multi_gpu_with_an_example_process_count():
    from accelerate.utils import DistributedType

    cfg = _load("ddp.yaml")
    assert cfg.distributed_type == DistributedType.MULTI_GPU and cfg.num_processes == 2 and not cfg.use_cpu
    args = _launch_args("ddp.yaml")
    assert args.multi_gpu and not args.use_deepspeed and args.num_processes == 2


def test_zero2_config_is_deepspeed_stage_2_with_batching_left_to_the_trainer():
    from accelerate.utils import DistributedType

    cfg = _load("deepspeed_zero2.yaml")
    assert cfg.distributed_type == DistributedType.DEEPSPEED and cfg.num_processes == 2
    assert cfg.deepspeed_config["zero_stage"] == 2
    assert cfg.deepspeed_config["offload_optimizer_device"] == "none"
    # left out so that DeepSpeed's "auto" takes train.grad_accum and max_grad_norm from the Trainer
    assert "gradient_accumulation_steps" not in cfg.deepspeed_config
    assert "gradient_clipping" not in cfg.deepspeed_config
    args = _launch_args("deepspeed_zero2.yaml")
    assert args.use_deepspeed and args.zero_stage == 2 and args.gradient_accumulation_steps is None


def test_cpu_config_is_one_process_on_the_cpu():
    from accelerate.utils import DistributedType

    cfg = _load("cpu.yaml")
    assert cfg.distributed_type == DistributedType.NO and cfg.use_cpu and cfg.num_processes == 1
    args = _launch_args("cpu.yaml")
    assert args.use_cpu and not args.multi_gpu and not args.use_deepspeed


# ------------------------------------------------------------------------------------------ refused launches

def test_a_plain_process_is_never_refused(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    for method in ("rft", "dpo", "grpo"):
        distributed.check_launch(method)


def test_deepspeed_launch_without_deepspeed_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setattr(distributed, "deepspeed_installed", lambda: False)
    with pytest.raises(TaoError, match="pip install deepspeed"):
        distributed.check_launch("rft")


def test_grpo_under_deepspeed_is_refused_rft_and_dpo_are_not(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setattr(distributed, "deepspeed_installed", lambda: True)
    with pytest.raises(TaoError, match="ddp.yaml"):
        distributed.check_launch("grpo")
    distributed.check_launch("rft")
    distributed.check_launch("dpo")


def test_refused_before_the_round_writes_anything(tmp_path, monkeypatch):
    from opentao.store import RunStore
    from opentao.train.stage import run_train
    from tests.helpers.runs import hand_made_run

    hand_made_run(tmp_path / "run", n=2)
    store = RunStore(tmp_path / "run")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setattr(distributed, "deepspeed_installed", lambda: False)
    with pytest.raises(TaoError, match="DeepSpeed"):
        run_train(store, TrainConfig(method="grpo"), "unused-model", round_=1)
    assert not store.has_part("train_examples", "r1")
    assert not (tmp_path / "run" / "summary" / "train-r1.json").exists()


# ------------------------------------------------------------------------------------------------ who writes

class _Rank:
    """A stand-in for ``PartialState`` on rank ``index`` of ``world`` (barriers counted, never blocking)."""

    def __init__(self, index: int, world: int = 2):
        self.process_index, self.num_processes = index, world
        self.is_main_process = index == 0
        self.device = torch.device("cpu")
        self.barriers = 0

    def wait_for_everyone(self):
        self.barriers += 1


def test_one_process_is_the_main_one_and_trains_where_it_always_did():
    from opentao.models import pick_device

    assert distributed.num_processes() == 1 and distributed.is_main_process()
    with distributed.main_first() as main:
        assert main
    distributed.barrier()
    assert distributed.train_device("auto") == pick_device("auto")
    assert distributed.train_device("cpu") == torch.device("cpu")


def test_with_several_processes_auto_is_the_ranks_own_device(monkeypatch):
    rank = _Rank(1)
    rank.device = torch.device("cuda", 1)  # what PartialState gives local rank 1 (nothing is allocated here)
    monkeypatch.setattr(distributed, "state", lambda: rank)
    assert distributed.train_device("auto") == torch.device("cuda", 1)
    assert distributed.train_device("cpu") == torch.device("cpu")  # an explicit device is kept


def test_main_first_orders_the_ranks_around_one_barrier(monkeypatch):
    seen = []
    for index in (0, 1):
        rank = _Rank(index)
        monkeypatch.setattr(distributed, "state", lambda rank=rank: rank)
        with distributed.main_first() as main:
            seen.append((index, main, rank.barriers))  # barriers passed before the body
        assert rank.barriers == 1
    assert seen == [(0, True, 0), (1, False, 1)]  # the main process runs first; the others after its barrier


def test_only_the_main_process_publishes_the_model(tmp_path, monkeypatch):
    from opentao.train import merge

    rank = _Rank(1)
    monkeypatch.setattr(distributed, "state", lambda: rank)
    monkeypatch.setattr(merge, "publish_merged", lambda *a, **k: pytest.fail("a non-main rank published"))
    assert merge.publish_on_main(object(), object(), 123, tmp_path / "m", lora=True) == 123
    assert rank.barriers == 1 and not (tmp_path / "m").exists()


def test_only_the_main_process_writes_the_train_summary(tmp_path, monkeypatch):
    from opentao.store import RunStore
    from opentao.train.stage import examples_for_round, run_train
    from tests.helpers.runs import hand_made_run

    hand_made_run(tmp_path / "run", n=2)
    store = RunStore(tmp_path / "run")
    cfg = TrainConfig(method="grpo")
    examples_for_round(store, cfg, 1)  # what the main process wrote before the barrier
    rank = _Rank(1)
    monkeypatch.setattr(distributed, "state", lambda: rank)
    import opentao.train.trainer as trainer

    monkeypatch.setattr(trainer, "train_model", lambda *a, **k: {"examples": 8, "steps": 1})
    stats = run_train(store, cfg, "unused-model", round_=1)
    assert stats["steps"] == 1 and stats["method"] == "grpo"
    assert store.read_summary("train-r1") is None  # the main process writes it; this rank only waited
    assert rank.barriers == 2  # after main built the examples, after main wrote the summary


def test_one_progress_bar_under_a_launch():
    from opentao.train.progress import TrainProgress

    bar = TrainProgress()
    state = SimpleNamespace(is_world_process_zero=False, max_steps=3, global_step=0)
    bar.on_train_begin(None, state, None)
    bar.on_step_end(None, state, None)
    bar.on_log(None, state, None, logs={"loss": 1.0})
    bar.on_train_end(None, state, None)
    assert bar._stack is None and bar._advance is None  # nothing opened on a non-zero rank


# --------------------------------------------------------------------------------- GRPO: one global batch split

def _old_draw(order: list[int], rng: random.Random, n: int, bs: int) -> list[int]:
    """The one-process loop's draw before the loop was made DDP-aware (kept here as the reference)."""
    if len(order) < bs:
        order.extend(rng.sample(range(n), n))
    return [order.pop(0) for _ in range(min(bs, len(order)))]


@pytest.mark.parametrize(("n", "bs"), [(16, 4), (10, 3), (2, 4), (1, 1), (7, 7)])
def test_one_process_draws_exactly_the_batches_it_always_did(n: int, bs: int):
    old_rng, new_rng, old_order, new_order = random.Random(5), random.Random(5), [], []
    for _ in range(40):
        assert draw_micro(new_order, new_rng, n, bs, 1) == _old_draw(old_order, old_rng, n, bs)


@pytest.mark.parametrize(("n", "bs", "world"), [(16, 4, 2), (10, 3, 4), (3, 2, 2), (1, 2, 3)])
def test_several_ranks_split_each_global_batch_and_every_rank_gets_examples(n: int, bs: int, world: int):
    rng, order, drawn = random.Random(0), [], []
    for _ in range(30):
        idx = draw_micro(order, rng, n, bs, world)
        assert world <= len(idx) <= bs * world
        shards = [idx[r::world] for r in range(world)]
        assert all(1 <= len(s) <= bs for s in shards)
        assert sorted(i for s in shards for i in s) == sorted(idx)  # a partition of the global batch
        drawn += idx
    if n >= bs * world:  # whole shuffled epochs, in order: every example once per epoch
        for e in range(len(drawn) // n):
            assert sorted(drawn[e * n:(e + 1) * n]) == list(range(n))


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_ddp_average_of_the_ranks_losses_is_the_one_process_loss_and_gradient(loss_type: str):
    torch.manual_seed(0)
    B, C, world = 6, 5, 2
    base = torch.randn(B, C)
    old, ref = base + 0.1 * torch.randn(B, C), base + 0.1 * torch.randn(B, C)
    adv = torch.randn(B)
    mask = (torch.rand(B, C) > 0.3).float()
    mask[:, 0] = 1.0
    kw = dict(epsilon=0.2, epsilon_high=0.28, beta=0.04, loss_type=loss_type)
    norm = float(mask.sum()) if loss_type == "dapo" else float(B)

    full_logps = base.clone().requires_grad_()
    full, _ = grpo_loss(full_logps, old, ref, adv, mask, normalizer=norm, **kw)
    full.backward()

    shard_logps = base.clone().requires_grad_()
    ranks = [torch.arange(B)[r::world] for r in range(world)]
    losses = [grpo_loss(shard_logps[i], old[i], ref[i], adv[i], mask[i], normalizer=norm / world, **kw)[0]
              for i in ranks]
    ddp_mean = sum(losses) / world  # DDP all-reduces the gradients as a mean over the ranks
    ddp_mean.backward()
    assert float(ddp_mean.detach()) == pytest.approx(float(full.detach()), rel=1e-6)
    assert torch.allclose(shard_logps.grad, full_logps.grad, atol=1e-7)
