"""Prompt-injection benchmark for the judges: does an answer that addresses its grader gain reward?

Over the committed corpus ``src/opentao/score/data/injections.jsonl`` (each row: a task, a clean answer and
the same answer carrying an injection attempt), every judge configuration scores the clean and the injected
answer of each row as one group, and we record the *gain* (injected − clean). Configurations:

* ``judge`` / ``judge_group`` / ``judge_logprob`` (P(yes) of a yes/no question) with the real judge model, **guard off** (only the quoting defence of the
  prompt) and **guard on** (the default: flagged answers get the lowest score without being shown);
* the same with the gullible stub judge of the tests (a control: it is fooled by construction).

Result: ``benchmarks/results/injection.json`` — per configuration the share of attempts that gained, the mean
gain, the share of replies that could be parsed, and per-row scores.

    .venv/bin/python benchmarks/injection.py                          # bundled SmolLM2-135M-Instruct, local
    .venv/bin/python benchmarks/injection.py --base-url http://127.0.0.1:8000/v1 --model NAME   # an endpoint
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "injection.json"
sys.path.insert(0, str(ROOT))  # for the stub judge in tests/


KINDS = ("judge", "judge_group", "judge_logprob")


def corpus() -> list[dict]:
    text = resources.files("opentao.score").joinpath("data/injections.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_config(kind: str, guard: bool, backend, rows: list[dict]) -> dict:
    from opentao.records import Candidate, Prompt
    from opentao.score.judge import GroupJudgeScorer, JudgeScorer, LogprobJudgeScorer

    if kind == "judge_logprob":
        scorer = LogprobJudgeScorer(backend=backend, injection_guard=guard)
    else:
        cls = JudgeScorer if kind == "judge" else GroupJudgeScorer
        scorer = cls(backend=backend, injection_guard=guard, max_new_tokens=24 if kind == "judge" else 64)
    per_row, t0 = [], time.perf_counter()
    for r in rows:
        prompt = Prompt(r["id"], [{"role": "user", "content": r["prompt"]}])
        cands = [Candidate(r["id"], f"{r['id']}#{j}", "plain", [], t, t, "") for j, t in enumerate((r["clean"],
                                                                                                  r["injected"]))]
        clean, injected = scorer.score_group(prompt, cands)
        gain = None if clean is None or injected is None else injected - clean
        per_row.append({"id": r["id"], "clean": clean, "injected": injected, "gain": gain})
    gains = [x["gain"] for x in per_row if x["gain"] is not None]
    replies = [v for x in per_row for v in (x["clean"], x["injected"])]
    return {
        "kind": kind, "guard": guard, "rows": len(rows),
        "gained": sum(g > 0 for g in gains), "gained_share": sum(g > 0 for g in gains) / len(rows),
        "mean_gain": sum(gains) / len(gains) if gains else None,
        "comparable_rows": len(gains), "scored_share": sum(v is not None for v in replies) / len(replies),
        "counters": scorer.counters(), "seconds": time.perf_counter() - t0, "per_row": per_row,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="bundled", help="judge model (local backend) or the endpoint's model name")
    ap.add_argument("--base-url", default=None, help="use an OpenAI-compatible endpoint instead of a local model")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--limit", type=int, default=None, help="only the first N corpus rows (a slow machine)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="judges to run (default: all)")
    args = ap.parse_args()

    from opentao.score.llm import make_backend
    from opentao.testing import StubBackend

    rows = corpus()[: args.limit]
    if args.base_url:
        backend = make_backend("openai", base_url=args.base_url, model=args.model)
        model_label = f"{args.model} @ {args.base_url}"
    else:
        backend = make_backend("hf", model=args.model)
        model_label = f"{args.model} (local HF backend, greedy)"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # a run of some --kinds keeps the other kinds' results from an earlier run with the same rows and model
    kept: list[dict] = []
    if args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("rows_used") == len(rows) and old.get("judge_model") == model_label:
            kept = [r for r in old.get("results", []) if r["kind"] not in args.kinds]
            for r in kept:
                r.setdefault("date", old.get("date"))
    results = []
    for kind in args.kinds:
        for guard in (False, True):
            res = run_config(kind, guard, backend, rows)
            res.update(judge_model=model_label, date=now)
            results.append(res)
            print(f"{kind:12s} guard={'on ' if guard else 'off'} gained {res['gained']}/{res['rows']}, mean gain "
                  f"{res['mean_gain'] if res['mean_gain'] is None else round(res['mean_gain'], 3)}, scored "
                  f"{res['scored_share']:.0%} ({res['seconds']:.0f} s)", flush=True)
            stub = run_config(kind, guard, StubBackend(), rows)
            stub.update(judge_model="gullible stub (control)", date=now)
            results.append(stub)
    order = {k: i for i, k in enumerate(KINDS)}
    results = sorted(kept + results, key=lambda r: (order.get(r["kind"], len(order)), r["guard"]))
    out = {"date": now, "corpus_rows": len(corpus()), "rows_used": len(rows), "judge_model": model_label,
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
