"""Reward integrity on the real text-to-SQL task: which label-free scorers prefer correct SQL?

Held-out Chinook questions (``test.jsonl`` stripped of its gold SQL) are the prompts; the bundled
SmolLM2-135M-Instruct samples K candidates per question; five rewards score them without labels — the SQL
verifier, the majority vote over result sets, the pointwise judge and the group judge (both the same bundled
model, served by the real gateway, ``opentao.serve.create_app`` on loopback, and reached through the official
``openai`` client),
and their combination. ``tao score --gold test.jsonl`` then reports each reward's integrity. Writes
``benchmarks/results/integrity_sql.json``.

    .venv/bin/python benchmarks/integrity_sql.py --prompts 24 --k 4     # ~10 min on 2 shared cores
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
sys.path.insert(0, str(ROOT))
RESULT = ROOT / "benchmarks" / "results" / "integrity_sql.json"
TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]
RUBRIC = ("The answer is one SQLite query. It must use only tables and columns of the schema in the task, and "
          "return exactly what the question asks: the right rows and only the asked columns.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "integrity-sql")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()

    from opentao.models import resolve_model
    from opentao.paths import cache_dir
    from opentao.pipeline import prepare_sql_task
    from opentao.serve.app import ServeSettings, create_app
    from opentao.serve.testing import serve_in_thread

    task = cache_dir() / "tasks" / "chinook-sql"
    prepare_sql_task(task)
    rows = [json.loads(line) for line in (task / "test.jsonl").read_text().splitlines() if line.strip()]
    args.run_dir.mkdir(parents=True, exist_ok=True)
    prompts = args.run_dir / "questions.jsonl"  # the held-out questions *without* their gold SQL
    prompts.write_text("".join(json.dumps({"id": r["id"], "messages": r["messages"]}) + "\n"
                               for r in rows[: args.prompts]))
    t0 = time.perf_counter()
    settings = ServeSettings(served_name="smollm2-135m", max_batch=8, dtype="bf16")
    with serve_in_thread(create_app(resolve_model("bundled"), settings=settings)) as url:
        judge = {"base_url": url + "/v1", "model": "smollm2-135m", "rubric": RUBRIC, "concurrency": 4,
                 "timeout_s": 300}
        cfg = args.run_dir / "integrity.yaml"
        cfg.write_text("\n".join([
            f"run_dir: {args.run_dir}", "model: bundled", f"prompts: {prompts}", f"db: {task / 'chinook.sqlite'}",
            "generate:", f"  k: {args.k}", "  strategies: [plain, system]", "  temperatures: [0.7]",
            "  system_prompts: ['You are an expert SQLite analyst. Reply with one SQLite query and nothing else.']",
            "  max_new_tokens: 64", "  stop: [';', '\\n\\n', '\\n```']", "  batch_size: 32", "  extract: sql",
            "score:", "  prompts_per_part: 8", "  scorers:",
            "    - {type: sql_exec, star_score: 0.5}",
            "    - {type: majority_vote, mode: sql_result}",
            f"    - {json.dumps({'type': 'judge', 'max_new_tokens': 16, **judge})}",
            f"    - {json.dumps({'type': 'judge_group', 'max_new_tokens': 64, **judge})}",
        ]) + "\n")
        env = {**os.environ, "COLUMNS": "200"}
        subprocess.run([*TAO, "generate", "-c", str(cfg)], check=True, env=env)
        t_gen = time.perf_counter() - t0
        res = subprocess.run([*TAO, "score", "-c", str(cfg), "--gold", str(task / "test.jsonl")], env=env,
                             capture_output=True, text=True)
        print(res.stdout, res.stderr, sep="\n")
        res.check_returncode()
    summary = json.loads((args.run_dir / "summary" / "integrity-r1.json").read_text())
    score_stats = json.loads((args.run_dir / "summary" / "score-r1.json").read_text())
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "prompts": args.prompts, "k": args.k,
           "seconds_generate": round(t_gen, 1), "seconds_total": round(time.perf_counter() - t0, 1),
           "judge_model": "bundled SmolLM2-135M-Instruct over HTTP (opentao.serve gateway, openai client)",
           "integrity": summary, "score_stats": score_stats, "score_stdout": res.stdout}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
