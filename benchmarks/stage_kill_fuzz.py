"""Stage-kill fuzz: SIGKILL `tao run` inside each stage at random points, resume, compare with a clean run.

    PYTHONPATH=src python benchmarks/stage_kill_fuzz.py [--kills 10] [--seed 0] [--out FILE]

A tiny config (the 2-layer random Llama of ``opentao.testing``, 4 prompts, k=2, one prompt per part,
a regex scorer, 4 LoRA steps checkpointed every step, a 4-row docqa eval set) runs twice uninterrupted (the
reference, and a rerun that must equal it). Then, for each stage of a round — generate, score, train, eval
(the round-1 eval) — a run directory holding the reference's outputs of the earlier stages (what an
uninterrupted run has at that point) is killed ``--kills`` times while that stage runs: the command is
(re)started, and once the previous stage's report line appears (done stages are skipped fast) it is SIGKILLed
after a random delay drawn from [0, 1.2 × that stage's reference wall time]. Kills chain (kill, resume, kill
again, ... in one directory); an attempt whose kill lands after the stage finished is not counted and ends the
chain: the command then runs to completion, and every table (prompts, candidates, scores, train_examples,
eval_results) must equal the reference row for row, with no duplicate rows. So every counted kill is checked. Results:
``benchmarks/results/stage_kill_fuzz.json`` (per stage: kills landed, where, resumed-run identical yes/no,
and the first differing table if not).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("generate", "score", "train", "eval")
TABLES = ("prompts", "candidates", "scores", "train_examples", "eval_results")
# the report line printed when each stage has finished (pipeline.run_rounds)
DONE_LINE = {"base": "base:", "generate": "round 1 generate:", "score": "round 1 score:",
             "train": "round 1 train:", "eval": "round 1:"}
BEFORE = {"generate": "base", "score": "generate", "train": "score", "eval": "train"}
TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def write_inputs(work: Path, model: Path) -> Path:
    """Prompts, a docqa eval set and the run config in ``work``; returns the config path."""
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question number {i}: name a colour."}) + "\n"
                               for i in range(4)))
    dev = work / "dev.jsonl"
    dev.write_text("".join(json.dumps({"id": f"d{i}", "messages": [{"role": "user", "content": f"Is {i} even?"}],
                                       "kind": "yesno", "answer": "yes" if i % 2 == 0 else "no"}) + "\n"
                           for i in range(4)))
    cfg = {"model": str(model), "prompts": str(prompts), "seed": 3, "dtype": "fp32",
           "generate": {"k": 2, "temperatures": [1.0], "max_new_tokens": 6, "batch_size": 4, "prompts_per_part": 1},
           "score": {"scorers": [{"type": "regex", "pattern": "[aeiou]"}], "prompts_per_part": 2},
           "train": {"method": "rft", "threshold": 0.5, "max_steps": 4, "save_steps": 1, "batch_size": 2,
                     "lora_r": 4, "lora_alpha": 8, "max_length": 96},
           "eval": {"task": "docqa", "data": str(dev), "max_new_tokens": 4, "batch_size": 2}}
    path = work / "cfg.yaml"
    path.write_text(json.dumps(cfg))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}


def run_to_end(cfg: Path, run_dir: Path) -> None:
    subprocess.run([*TAO, "run", str(cfg), "--run-dir", str(run_dir)], check=True, env=env(),
                   capture_output=True, timeout=900)


def table_rows(run_dir: Path, table: str) -> list[tuple]:
    import pyarrow.parquet as pq

    rows = []
    for part in sorted((run_dir / "tables" / table).glob("part-*.parquet")):
        rows.extend(tuple(sorted(r.items())) for r in pq.read_table(part).to_pylist())
    return sorted(rows, key=repr)


def compare(ref: Path, got: Path) -> dict:
    """Row-for-row equality of every table (sorted rows, all columns) and no duplicate rows."""
    out = {}
    for t in TABLES:
        a, b = table_rows(ref, t), table_rows(got, t)
        out[t] = {"rows": len(b), "reference_rows": len(a), "identical": a == b,
                  "duplicates": len(b) - len(set(b))}
    return out


def kill_once(cfg: Path, run_dir: Path, stage: str, ref_wall: dict[str, float], rng: random.Random) -> dict:
    """Start the run, wait for ``stage`` to begin, SIGKILL it after a random delay; where the kill landed."""
    proc = subprocess.Popen([*TAO, "run", str(cfg), "--run-dir", str(run_dir)], env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    started = threading.Event()
    start_line = DONE_LINE[BEFORE[stage]]

    def reader() -> None:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(start_line) or (stage == "generate" and line.startswith("base:")):
                started.set()

    threading.Thread(target=reader, daemon=True).start()
    t0 = time.monotonic()
    while not started.is_set() and proc.poll() is None and time.monotonic() - t0 < 600:
        time.sleep(0.01)
    if not started.is_set():
        proc.wait()
        return {"landed": "finished" if proc.returncode == 0 else f"exited {proc.returncode}", "delay_s": None}
    delay = rng.uniform(0, 1.2 * max(ref_wall.get(stage, 1.0), 0.5))
    time.sleep(delay)
    if proc.poll() is not None:
        return {"landed": "finished", "delay_s": round(delay, 2)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.05)  # let the reader drain
    done = [s for s in ("base", *STAGES) if any(ln.startswith(DONE_LINE[s]) for ln in seen)]
    landed = next((s for s in ("generate", "score", "train", "eval") if s not in done), "after")
    return {"landed": landed, "delay_s": round(delay, 2)}


# what a run directory holds once each stage is done (relative paths; directories copied whole)
_OUTPUTS = {"base": ("config.yaml", "tables/eval_results/part-r0-base.parquet", "summary/eval-r0-base.json"),
            "generate": ("tables/prompts", "tables/candidates"),
            "score": ("tables/scores", "summary/score-r1.json"),
            "train": ("tables/train_examples", "train", "models", "summary/train-r1.json")}


def seed_run_dir(ref: Path, run_dir: Path, stage: str) -> None:
    """``run_dir`` as an uninterrupted run leaves it just before ``stage`` starts: the reference's outputs of
    the earlier stages (the stage under test and the later ones still have everything to do)."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    order = ["base", *STAGES]
    for done in order[: order.index(stage)]:
        for rel in _OUTPUTS[done]:
            src, dst = ref / rel, run_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)


def fuzz_stage(cfg: Path, work: Path, ref: Path, stage: str, kills: int, ref_wall: dict, rng: random.Random,
               max_tries: int | None = None) -> dict:
    """Kill ``kills`` times inside ``stage`` (earlier stages seeded from the reference), each kill verified.

    Kills form chains: kill, resume, kill again, ... in one directory. When an attempt finds the stage already
    done (the resume got through it before the kill fired), that chain ends: the run is finished and its tables
    compared with the reference, so every kill counted was followed by a resume whose result was checked; the
    directory is then reset to the stage's start for the next chain."""
    run_dir = work / f"killed-{stage}"
    seed_run_dir(ref, run_dir, stage)
    events: list[dict] = []
    chains: list[dict] = []
    pending, tries = 0, 0

    def close_chain() -> None:
        nonlocal pending
        run_to_end(cfg, run_dir)
        tables = compare(ref, run_dir)
        chains.append({"kills": pending, "tables": tables,
                       "identical": all(t["identical"] and t["duplicates"] == 0 for t in tables.values())})
        pending = 0
        seed_run_dir(ref, run_dir, stage)

    while sum(c["kills"] for c in chains) + pending < kills and tries < (max_tries or 4 * kills):
        tries += 1
        ev = kill_once(cfg, run_dir, stage, ref_wall, rng)
        events.append(ev)
        if ev["landed"] == stage:
            pending += 1
        elif pending:
            close_chain()  # the stage finished in this attempt: verify the chain's kills
        else:
            seed_run_dir(ref, run_dir, stage)
    if pending or not chains:
        close_chain()
    return {"kills_in_stage": sum(c["kills"] for c in chains), "attempts": len(events), "events": events,
            "chains": [{"kills": c["kills"], "identical": c["identical"]} for c in chains],
            "tables": chains[-1]["tables"], "identical": all(c["identical"] for c in chains)}


def reference(cfg: Path, work: Path) -> tuple[Path, dict[str, float]]:
    ref = work / "reference"
    run_to_end(cfg, ref)
    summary = json.loads((ref / "summary" / "run.json").read_text())
    rnd = summary["rounds"][0]
    wall = {s: float((rnd.get(s) or {}).get("wall_s", 1.0)) for s in STAGES}
    return ref, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", nargs="*", default=list(STAGES))
    ap.add_argument("--max-tries", type=int, default=None,
                    help="attempts per stage (default 4 x --kills); a short stage misses often")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage_kill_fuzz.json"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from opentao.testing import tiny_random_llama

    rng = random.Random(args.seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="stage-kill-") as tmp:
        work = Path(tmp)
        cfg = write_inputs(work, tiny_random_llama(work / "tiny-llama"))
        ref, wall = reference(cfg, work)
        again = work / "reference-2"
        run_to_end(cfg, again)
        result = {"kills_per_stage": args.kills, "seed": args.seed, "reference_stage_wall_s": wall,
                  "rerun_identical": all(t["identical"] for t in compare(ref, again).values()), "stages": {}}
        print("reference", json.dumps(wall), "rerun identical:", result["rerun_identical"], flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        for stage in args.stages:
            res = fuzz_stage(cfg, work, ref, stage, args.kills, wall, rng, args.max_tries)
            result["stages"][stage] = res
            print(stage, res["kills_in_stage"], "kills, identical:", res["identical"], flush=True)
            result["all_identical"] = all(s["identical"] for s in result["stages"].values())
            result["complete"] = len(result["stages"]) == len(args.stages)
            result["wall_s"] = round(time.time() - t0, 1)
            out.write_text(json.dumps(result, indent=2) + "\n")  # after every stage: a partial run keeps its part
    return 0 if result["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
