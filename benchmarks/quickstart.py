"""Measure `tao quickstart` end to end and record it: benchmarks/results/quickstart.json + docs/quickstart.md.

Runs the real command a newcomer runs (``tao quickstart`` in a fresh run directory, as a subprocess), times it,
and copies the run's own summary (per-stage seconds, base and tuned execution accuracy with Wilson 95% CIs,
table row counts) into one JSON file. ``docs/quickstart.md`` is rendered from that JSON only.

    .venv/bin/python benchmarks/quickstart.py              # run, record, render (~10 min on 2 AVX-512 cores)
    .venv/bin/python benchmarks/quickstart.py --render     # re-render the page from the committed JSON
    .venv/bin/python benchmarks/quickstart.py --set train.epochs=3 --out /tmp/q.json   # a variant, page untouched
    .venv/bin/python benchmarks/quickstart.py --recorded runs/quickstart --wall-s 1400 --log demo.log --out q.json
                                                           # record a finished `make demo` (timed by its caller)
    .venv/bin/python benchmarks/quickstart.py --pool q0.json q1.json q2.json --out seeds.json   # seeds pooled

The tuned-vs-base difference carries a paired-bootstrap 95% CI over the held-out questions
(:func:`opentao.evaluate.significance.paired_change`, 2,000 resamples): both models answer the same questions, so
pairing removes the variance of which questions happen to be in the test set.

The load average before and after is recorded: on a shared machine, other work slows the run down.
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "quickstart.json"
PAGE = ROOT / "docs" / "quickstart.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def vllm_version() -> str | None:
    try:
        import vllm
    except ImportError:
        return None
    return vllm.__version__


def measure(run_dir: Path, overrides: list[str] | None = None) -> dict:
    """Run ``tao quickstart`` into a fresh ``run_dir``, timed, and :func:`collect` it."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    tao = Path(sys.executable).with_name("tao")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    cmd = [str(tao), "quickstart", "--run-dir", str(run_dir), *[a for kv in overrides or [] for a in ("--set", kv)]]
    proc = subprocess.run(cmd, text=True, capture_output=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"tao quickstart failed with exit status {proc.returncode}")
    command = " ".join(["tao quickstart", *[f"--set {kv}" for kv in overrides or []]])
    return collect(run_dir, wall_s=wall, command=command, stdout=proc.stdout, load_before=load_before)


def collect(run_dir: Path, *, wall_s: float, command: str, stdout: str = "", load_before: float | None = None) -> dict:
    """One JSON record of a finished quickstart run: its own summary (``summary/run.json``), the wall time the
    caller measured, and this machine (so ``--recorded`` is for a run made on this machine)."""
    import torch

    from opentao.evaluate.significance import paired_change
    from opentao.models import cpu_has_fast_bf16

    path = run_dir / "summary" / "run.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found: is {run_dir} a finished quickstart run directory?")
    summary = json.loads(path.read_text())
    if not summary.get("rounds"):
        raise SystemExit(f"error: {path} records no finished round")
    r1 = summary["rounds"][-1]
    return {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                    "torch": torch.__version__, "avx512_bf16": cpu_has_fast_bf16(), "vllm": vllm_version(),
                    "load_avg_1m_before": None if load_before is None else round(load_before, 2),
                    "load_avg_1m_after": round(os.getloadavg()[0], 2)},
        "engines": {"generate": r1["generate"].get("engine"), "eval": summary["base"].get("engine", "hf")},
        "wall_s": round(wall_s, 1),
        "stage_wall_s": {"eval_base": summary["base"]["wall_s"], "generate": r1["generate"]["wall_s"],
                         "score": r1["score"]["wall_s"], "train": r1["train"]["wall_s"],
                         "eval_tuned": r1["eval"]["wall_s"]},
        "base": summary["base"],  # per_example: ids and correctness only, the input of --pool
        "tuned": r1["eval"],
        "vs_base": paired_change(summary["base"], r1["eval"]),
        "generate": r1["generate"],
        "score": r1["score"],
        "train": r1["train"],
        "tables": summary["tables"],
        "stdout_tail": stdout[-3000:],
    }


def pool(paths: list[Path]) -> dict:
    """Several recorded runs (seeds) of the quickstart pooled: the mean of their paired changes with the two-level
    bootstrap CI of :func:`opentao.bench.stats.pooled_paired_bootstrap` (seeds, then the shared held-out questions),
    each run against its own base, on the questions every run answered."""
    from opentao.bench.stats import pooled_paired_bootstrap

    runs = []
    for p in paths:
        try:
            r = json.loads(p.read_text())
            pe = (r["base"]["per_example"], r["tuned"]["per_example"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"error: {p}: not a quickstart record with per-example results ({type(e).__name__}: {e})")
        runs.append((p, r, [dict(zip(x["ids"], x["correct"])) for x in pe]))
    first = runs[0][1]["base"]["per_example"]["ids"]
    common = [i for i in first if all(i in b and i in t for _, _, (b, t) in runs)]
    if not common:
        raise SystemExit("error: the runs share no held-out question")
    d = pooled_paired_bootstrap([[b[i] for i in common] for _, _, (b, _t) in runs],
                                [[t[i] for i in common] for _, _, (_b, t) in runs])
    return {"benchmark": "quickstart, pooled over runs",
            "runs": [{"file": str(p), "command": r["command"], "machine": r["machine"]["cpu"],
                      "avx512_bf16": r["machine"]["avx512_bf16"], "wall_s": r["wall_s"],
                      "base": r["base"]["correct"], "tuned": r["tuned"]["correct"], "n": r["tuned"]["n"],
                      "vs_base": {k: r["vs_base"][k] for k in ("delta", "ci95", "gained", "lost")}}
                     for p, r, _ in runs],
            "pooled": d}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render(res: dict) -> str:
    b, t, tr = res["base"], res["tuned"], res["train"]
    m = res["machine"]
    lines = [
        "# The quickstart, measured",
        "",
        f"`make demo` runs `tao quickstart`: one TAO round of text-to-SQL on the Chinook database with the bundled",
        "SmolLM2-135M-Instruct. Every figure on this page is read from",
        "[`benchmarks/results/quickstart.json`](../benchmarks/results/quickstart.json), written by",
        "`benchmarks/quickstart.py` (which runs the real `tao quickstart` command, or with `--recorded` reads a run",
        "someone timed, such as `make demo` from a fresh clone).",
        "",
        f"Measured {res['date']} on {m['cpus']} × {m['cpu']}, Python {m['python']}, torch {m['torch']}"
        + (f", vLLM {m['vllm']}" if m.get("vllm") else "") + f"; command: `{res['command']}`"
        + (f" (1-minute load average {m['load_avg_1m_before']} before, {m['load_avg_1m_after']} after)."
           if m.get("load_avg_1m_before") is not None else "."),
        "",
        "## Held-out execution accuracy (gold SQL used only here)",
        "",
        "| model | accuracy | 95% CI (Wilson) | new tokens / answer | s / request | parameters |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in (("base", b), ("TAO round 1", t)):
        lo, hi = e["ci95"]
        lines.append(f"| {name} | {pct(e['accuracy'])} ({e['correct']}/{e['n']}) | {pct(lo)}–{pct(hi)} | "
                     f"{e['mean_new_tokens']:.1f} | {e['seconds_per_request']:.2f} | {e['parameters']:,} |")
    gain = t["accuracy"] - b["accuracy"]
    d = res.get("vs_base")
    paired = (f" (paired-bootstrap 95% CI {100 * d['ci95'][0]:+.1f} to {100 * d['ci95'][1]:+.1f}; {d['gained']} "
              f"questions gained, {d['lost']} lost)") if d else ""
    lines += [
        "",
        f"Change: {100 * gain:+.1f} points{paired}. The held-out questions use query *shapes* that never occur in the",
        "training prompts, and the training prompts carry no labels. The tuned model has the same parameter count",
        "as the base (the LoRA adapter is merged back), so it costs the same to run.",
        "",
        "## Where the time went",
        "",
        f"Total wall time: **{res['wall_s'] / 60:.1f} min** ({res['wall_s']:.0f} s), including the base evaluation.",
        "",
        "| stage | seconds |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in res["stage_wall_s"].items()]
    sc = res["score"]
    lines += [
        "",
        "## What the round did",
        "",
        f"- generate: {res['generate']['candidates']} candidates for {res['generate']['prompts']} prompts",
        "- score: mean per scorer "
        + ", ".join(f"{k} {v:.2f}" for k, v in sc.get("mean_score", {}).items() if v is not None)
        + f"; groups with no learning signal {100 * (sc.get('flat_share') or 0):.0f}%",
        f"- train: {tr['method']}, {tr['examples']} examples, {tr['steps']} steps, loss {tr.get('first_loss')} → "
        f"{tr.get('last_loss')}",
        "",
        "## Table sizes in the run directory",
        "",
        "| table | rows |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in res["tables"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", action="store_true", help="only re-render docs/quickstart.md from the JSON")
    ap.add_argument("--run-dir", default="runs/quickstart-bench")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override passed to tao quickstart (repeatable)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write the JSON here instead of benchmarks/results/quickstart.json, and leave the page alone")
    ap.add_argument("--recorded", type=Path, default=None, metavar="RUN_DIR",
                    help="record a quickstart run already made on this machine (e.g. `make demo`'s) instead of "
                         "running one; needs --wall-s and --out")
    ap.add_argument("--wall-s", type=float, default=None, help="with --recorded: the run's measured wall time")
    ap.add_argument("--log", type=Path, default=None, help="with --recorded: the run's console log (its tail is kept)")
    ap.add_argument("--command", default="make demo (recorded)",
                    help="with --recorded: the command that made the run, as the record should name it")
    ap.add_argument("--pool", type=Path, nargs="+", default=None, metavar="JSON",
                    help="pool several records (seeds) into one paired change with a seed-and-question CI; needs --out")
    args = ap.parse_args()
    if args.recorded and (args.wall_s is None or args.out is None or args.render or args.overrides):
        ap.error("--recorded needs --wall-s and --out, and takes no --render or --set")
    if args.pool is not None:
        if args.out is None or args.recorded or args.render or args.overrides:
            ap.error("--pool needs --out, and takes no --recorded, --render or --set")
        res = pool(args.pool)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        d = res["pooled"]
        print(f"{args.out}: {d['seeds']} runs, per-run delta " + ", ".join(f"{100 * x:+.1f}" for x in d["per_seed"])
              + f"; pooled {100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]")
        return
    if args.render:
        res = json.loads(RESULT.read_text())
    else:
        if args.recorded:
            stdout = args.log.read_text(errors="replace") if args.log else ""
            res = collect(args.recorded, wall_s=args.wall_s, command=args.command, stdout=stdout)
        else:
            res = measure(Path(args.run_dir), args.overrides)
        out = args.out or RESULT
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        if args.out:
            d = res["vs_base"]
            print(f"{out}: base {res['base']['correct']}/{res['base']['n']} -> tuned {res['tuned']['correct']}/"
                  f"{res['tuned']['n']}, delta {100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
                  f"{100 * d['ci95'][1]:+.1f}], wall {res['wall_s']:.0f} s")
            return
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(res))
    print(PAGE.read_text())


if __name__ == "__main__":
    main()
