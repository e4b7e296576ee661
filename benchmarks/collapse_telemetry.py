"""Collapse telemetry of one task's TAO runs in the full benchmark -> results/collapse-<task>.{json,md}.

For the task's TAO arm (rounds 1..R in ``runs/full/<task>/<task>-tao/``, which the ``-r2``/``-r3`` arms continue)
and its round-1 K arms (``<task>-tao-k<K>/``):

* **samples** — per round, the statistics ``tao run`` records as ``summary/telemetry-r<N>.json``
  (:func:`opentao.pipeline.stage_telemetry`: top-answer share, answer entropy, top answers, mean length, mean
  reward, and the collapse flag at the run's ``collapse`` limits) over the round's candidates — the samples of
  the model that sampled the round (round 1: the base; round r: round r-1's model);
* **answers** — the held-out answers of each evaluated model (the base, each round's tuned model), with the
  same entropy / top share (:func:`opentao.report.data.answer_stats`) and, for docqa, the share of bare yes/no
  answers that say *yes* (a model that collapsed answers one class to every question).

Reads the run directories only (``runs/`` is not committed): run it after the arms, on the machine that ran them.

    PYTHONPATH=src python benchmarks/collapse_telemetry.py --task docqa [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def yes_share(predictions: list[str]) -> tuple[int, float | None]:
    from opentao.tasks.docqa import yes_no

    said = [a for a in map(yes_no, predictions) if a]
    return len(said), (said.count("yes") / len(said) if said else None)


def run_dir_rows(run_dir: Path, task: str) -> dict:
    from opentao.config import load_config
    from opentao.pipeline import stage_telemetry
    from opentao.report.data import answer_stats
    from opentao.store import RunStore

    store = RunStore(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    rounds = sorted({int(r["round"]) for r in store.read("candidates")})
    samples = []
    for r in rounds:
        tel = stage_telemetry(store, cfg, r)
        samples.append({k: tel[k] for k in ("round", "sampled_by", "candidates", "prompts", "top_answer_share",
                                            "answer_entropy", "top_answers", "mean_tokens", "mean_reward",
                                            "collapse")})
    answers = []
    by_model: dict[tuple[int, str], list[str]] = {}
    for e in store.read("eval_results"):
        by_model.setdefault((int(e["round"]), str(e["model"])), []).append(
            " ".join((e.get("prediction") or "").split()).lower())
    for (r, model), preds in sorted(by_model.items()):
        st = answer_stats(preds)
        row = {"round": r, "model": model, "n": st["n"], "entropy_bits": st["entropy_bits"],
               "top_share": st["top_share"], "top": st["classes"][:3]}
        if task == "docqa":
            row["yesno"], row["yes_share"] = yes_share(preds)
        answers.append(row)
    return {"run_dir": str(run_dir.relative_to(HERE)), "collapse_limits": cfg.collapse.model_dump(),
            "samples": samples, "answers": answers}


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if x is None else fmt.format(x)


def render(task: str, out: dict) -> str:
    lines = [f"# Collapse telemetry: {task} (full benchmark, seed {out.get('seed', 0)})", "",
             "Rendered by `benchmarks/collapse_telemetry.py` from the arms' run directories. *Samples* are a "
             "round's candidates (drawn by the model that sampled the round); *answers* are a model's held-out "
             "greedy answers. Collapse limits: top-answer share > "
             f"{out['arms'][0]['collapse_limits']['max_top_share']}, entropy < "
             f"{out['arms'][0]['collapse_limits']['min_entropy']} bits.", ""]
    for arm in out["arms"]:
        lines += [f"## `{arm['run_dir']}`", "", "| round | samples of | candidates | top share | entropy (bits) | "
                  "top answers | mean tokens | mean reward | collapsed? |", "|---|---|---|---|---|---|---|---|---|"]
        for s in arm["samples"]:
            top = ", ".join(f"{a['answer'][:24]!r} {a['share']:.2f}" for a in s["top_answers"][:3])
            lines.append(f"| {s['round']} | {Path(s['sampled_by']).name} | {s['candidates']} | "
                         f"{_f(s['top_answer_share'])} | {_f(s['answer_entropy'])} | {top} | "
                         f"{_f(s['mean_tokens'], '{:.1f}')} | {_f(s['mean_reward'])} | "
                         f"{'; '.join(s['collapse']) or 'no'} |")
        lines += ["", "| round | model | answers | top share | entropy (bits) | top answers | yes share of yes/no |",
                  "|---|---|---|---|---|---|---|"]
        for a in arm["answers"]:
            top = ", ".join(f"{c[:24]!r} {s:.2f}" for c, s in a["top"])
            ys = f"{_f(a.get('yes_share'))} of {a['yesno']}" if "yesno" in a else "—"
            lines.append(f"| {a['round']} | {a['model']} | {a['n']} | {_f(a['top_share'])} | "
                         f"{_f(a['entropy_bits'])} | {top} | {ys} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="docqa")
    ap.add_argument("--runs", default=str(HERE / "runs" / "full"), help="the mode's run directories")
    ap.add_argument("--seed", type=int, default=0,
                    help="the seed's run directories (<arm>-s<seed>/; 0: <arm>/) -> collapse-<task>[-s<seed>].*")
    args = ap.parse_args(argv)
    if args.seed < 0:
        ap.error(f"--seed must be a non-negative integer, got {args.seed}")
    root = Path(args.runs) / args.task
    suffix = "" if args.seed == 0 else f"-s{args.seed}"
    k_name = re.compile(rf"^{re.escape(args.task)}-tao-k(\d+){re.escape(suffix)}$")
    k_arms = sorted((int(m[1]), p) for p in root.glob(f"{args.task}-tao-k*") if (m := k_name.match(p.name)))
    dirs = [root / f"{args.task}-tao{suffix}", *(p for _, p in k_arms)]
    dirs = [d for d in dirs if (d / "config.yaml").is_file() and (d / "tables" / "candidates").is_dir()]
    if not dirs:
        print(f"error: no {args.task}-tao{suffix} run directory under {root}: run the benchmark's arms first",
              file=sys.stderr)
        return 2
    out = {"task": args.task, "seed": args.seed, "arms": [run_dir_rows(d, args.task) for d in dirs]}
    res = HERE / "results"
    (res / f"collapse-{args.task}{suffix}.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    (res / f"collapse-{args.task}{suffix}.md").write_text(render(args.task, out), encoding="utf-8")
    print(render(args.task, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
