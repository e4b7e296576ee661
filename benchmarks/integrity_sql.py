"""Reward integrity on the real text-to-SQL task: which label-free scorers prefer correct SQL?

Chinook questions stripped of their gold SQL are the prompts: the held-out ``test.jsonl`` or the training
split ``train.jsonl`` (``--split``). The bundled SmolLM2-135M-Instruct samples K candidates per question at
``--temperature``; six rewards score them without labels — the SQL verifier, the majority vote over result
sets, three judges that are the same bundled model served by the real gateway (``opentao.serve.create_app``
on loopback, reached through the official ``openai`` client): the pointwise ``judge``, the group judge
``judge_group`` and the yes/no logprob judge ``judge_logprob`` — and their combination (equal weights).
``tao score --gold`` then reports each reward's integrity against the split's gold SQL (``test.jsonl`` or
``train_gold.jsonl``). A verdict needs groups holding both a correct and a wrong candidate (below 5 it is
"undetermined"): more prompts, a larger K and a higher temperature give more of them. Writes
``benchmarks/results/integrity_sql.json``; work goes to a run directory named after the settings, so a rerun
with the same settings resumes.

    .venv/bin/python benchmarks/integrity_sql.py --prompts 24 --k 4     # ~10 min on 2 shared cores
    .venv/bin/python benchmarks/integrity_sql.py --split train --prompts 120 --k 8 --temperature 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULT = ROOT / "benchmarks" / "results" / "integrity_sql.json"
TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]
JUDGE = "smollm2-135m"  # the judge's model id on the loopback gateway
SPLITS = {"test": ("test.jsonl", "test.jsonl"), "train": ("train.jsonl", "train_gold.jsonl")}  # questions, gold
RUBRIC = ("The answer is one SQLite query. It must use only tables and columns of the schema in the task, and "
          "return exactly what the question asks: the right rows and only the asked columns.")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=sorted(SPLITS), default="test",
                    help="question source: held-out test questions or the training questions (default test)")
    ap.add_argument("--prompts", type=_positive, default=24, help="number of questions (the first N of the split)")
    ap.add_argument("--k", type=_positive, default=4, help="candidates per question (>= 2)")
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0 < T <= 2)")
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="work directory (default: runs/integrity-sql/<split>-p<N>-k<K>-t<T>)")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    if args.k < 2:
        ap.error("--k must be at least 2: a group needs two candidates to compare")
    if not 0 < args.temperature <= 2:
        ap.error("--temperature must be in (0, 2]")

    from opentao.models import resolve_model
    from opentao.serve.app import ServeSettings, create_app
    from opentao.tasks import get_task
    from opentao.testing import serve_in_thread

    task = get_task("sql").prepare()
    questions, gold = (task / name for name in SPLITS[args.split])
    for path in (questions, gold):
        if not path.is_file():
            ap.error(f"{path} is missing: delete {task} to rebuild the Chinook task")
    rows = [json.loads(line) for line in questions.read_text().splitlines() if line.strip()]
    if args.prompts > len(rows):
        ap.error(f"--prompts {args.prompts}: the {args.split} split has {len(rows)} questions")
    run_dir = args.run_dir or ROOT / "runs" / "integrity-sql" / (
        f"{args.split}-p{args.prompts}-k{args.k}-t{args.temperature:g}")
    run_dir.mkdir(parents=True, exist_ok=True)
    prompts = run_dir / "questions.jsonl"  # the questions *without* their gold SQL
    prompts.write_text("".join(json.dumps({"id": r["id"], "messages": r["messages"]}) + "\n"
                               for r in rows[: args.prompts]))
    t0 = time.perf_counter()
    settings = ServeSettings(served_name=JUDGE, max_batch=8, dtype="bf16")
    with serve_in_thread(create_app(resolve_model("bundled"), settings=settings)) as url:
        judge = {"base_url": url + "/v1", "model": JUDGE, "rubric": RUBRIC, "concurrency": 4, "timeout_s": 300}
        cfg = run_dir / "integrity.yaml"
        cfg.write_text("\n".join([
            f"run_dir: {run_dir}", "model: bundled", f"prompts: {prompts}", f"db: {task / 'chinook.sqlite'}",
            "generate:", f"  k: {args.k}", "  strategies: [plain, system]", f"  temperatures: [{args.temperature}]",
            "  system_prompts: ['You are an expert SQLite analyst. Reply with one SQLite query and nothing else.']",
            "  max_new_tokens: 64", "  stop: [';', '\\n\\n', '\\n```']", "  batch_size: 32", "  extract: sql",
            "score:", "  prompts_per_part: 8", "  scorers:",
            "    - {type: sql_exec, star_score: 0.5}",
            "    - {type: majority_vote, mode: sql_result}",
            f"    - {json.dumps({'type': 'judge', 'max_new_tokens': 16, **judge})}",
            f"    - {json.dumps({'type': 'judge_group', 'max_new_tokens': 64, **judge})}",
            f"    - {json.dumps({'type': 'judge_logprob', 'top_logprobs': 20, **judge})}",
        ]) + "\n")
        # the `tao` subprocesses import this checkout's package too
        env = {**os.environ, "COLUMNS": "200",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        subprocess.run([*TAO, "generate", "-c", str(cfg)], check=True, env=env)
        t_gen = time.perf_counter() - t0
        res = subprocess.run([*TAO, "score", "-c", str(cfg), "--gold", str(gold)], env=env,
                             capture_output=True, text=True)
        print(res.stdout, res.stderr, sep="\n")
        res.check_returncode()
    summary = json.loads((run_dir / "summary" / "integrity-r1.json").read_text())
    score_stats = json.loads((run_dir / "summary" / "score-r1.json").read_text())
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "split": args.split,
           "prompts": args.prompts, "k": args.k, "temperature": args.temperature,
           "seconds_generate": round(t_gen, 1), "seconds_total": round(time.perf_counter() - t0, 1),
           "judge_model": "bundled SmolLM2-135M-Instruct over HTTP (opentao.serve gateway, openai client)",
           "integrity": summary, "score_stats": score_stats, "score_stdout": res.stdout}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
