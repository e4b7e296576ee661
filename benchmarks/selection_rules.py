#!/usr/bin/env python
"""How precise is the best-of-K selection at each K, under which vote rule? (sql; no training, no new samples)

The benchmark's K curve falls at K=16 on sql (results/full-sql-tao-k*.json): the kept examples grow (17 / 27 / 35 /
47 at K = 2 / 4 / 8 / 16) while their gold-correct share falls (41 / 41 / 46 / 32 %). This script reads the
benchmark's seed-0 K=16 sample pool (``runs/full/sql/pool-k16``; generated first if absent, as the K arms do),
keys every candidate once (``sql_exec`` score, result-set signature, gold correctness), and replays the rft
selection (reward >= threshold, at most ``max_per_prompt`` distinct responses per prompt, best first) on the first
K slots for several vote rules. Gold is read only to grade what each rule kept. A pool regenerated on another
machine (fp32 on AVX2, bf16 on AVX-512) differs from the one the K arms trained on, so its shipped-rule counts
differ from theirs; the rules are compared on one pool.

The rules, all on the shipped reward ``sql_exec + majority_vote(sql_result)`` at threshold 1.0:

* ``shipped``: min_votes 2; a group whose vote abstains (no result set reached 2 votes) is scored by
  ``sql_exec`` alone, so any valid query passes the threshold;
* ``vote-required``: a candidate must be in the plurality (an abstaining vote keeps nothing);
* ``min-share q``: the plurality must hold at least ``max(2, ceil(q * K))`` of the K samples (abstains below,
  as ``shipped`` does);
* ``required + min-share q``: both.

Writes results/selection-rules-sql.json and prints a table.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def key_pool(task: str = "sql") -> tuple[list[dict], dict]:
    """One record per candidate of the K=16 pool: prompt, slot, response, sql_exec score, vote key, gold ok."""
    from opentao.bench.arms import Runner
    from opentao.bench.table import Bench
    from opentao.data import read_table_rows
    from opentao.records import Candidate
    from opentao.score.sql import SqlExecScorer
    from opentao.score.vote import MajorityVoteScorer
    from opentao.tasks import get_task

    bench = Bench(HERE)
    runner = Runner(bench.sizes("full"), bench.work / "full", seed=0)
    pool = runner.pool(task)
    f = runner.files(task)
    grader = get_task(task).grader(f["db"])
    gold = {str(r["id"]): r for r in read_table_rows(f["gold"])}
    exe = SqlExecScorer(f["db"], star_score=0.5)
    vote = MajorityVoteScorer(mode="sql_result", db=f["db"])
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for r in pool.read("candidates", 1):
        c = Candidate.from_row(r)
        groups[c.prompt_id].append(c)
    recs = []
    for pid, cands in sorted(groups.items()):
        exec_scores = exe.score_group(None, cands)  # type: ignore[arg-type]
        vote.executor.reset_cache()
        for c, s in zip(cands, exec_scores):
            recs.append({"prompt_id": pid, "slot": int(c.candidate_id.rsplit("#", 1)[1]), "id": c.candidate_id,
                         "response": c.response, "exec": float(s), "key": vote.key(c),
                         "ok": bool(grader.grade(gold[pid], c.response)[0])})
    cfg = runner.config(task, bench.work / "full" / task / "pool-k16")
    return recs, {"threshold": cfg.train.threshold, "max_per_prompt": cfg.train.max_per_prompt,
                  "prompts": len(groups), "pool": str(pool.root.relative_to(HERE))}


def select(recs: list[dict], k: int, *, required: bool, min_share: float | None, threshold: float,
           max_per_prompt: int) -> list[dict]:
    """The rft selection on the first ``k`` slots under one vote rule (module doc)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        if r["slot"] < k:
            groups[r["prompt_id"]].append(r)
    min_votes = max(2, math.ceil(min_share * k)) if min_share else 2
    kept = []
    for pid in sorted(groups):
        g = groups[pid]
        counts: dict[str, int] = defaultdict(int)
        for r in g:
            if r["key"] is not None:
                counts[r["key"]] += 1
        top = max(counts.values(), default=0)
        abstain = top < min_votes
        winners = {k_ for k_, n in counts.items() if n == top}
        scored = []
        for r in g:
            if abstain:
                if required:
                    continue
                reward = r["exec"]  # the combined mean over the scorers that did not abstain
            else:
                reward = (r["exec"] + (1.0 if r["key"] in winners else 0.0)) / 2
            if r["response"].strip():
                scored.append((reward, r))
        scored.sort(key=lambda it: (-it[0], len(it[1]["response"]), it[1]["id"]))
        seen: set[str] = set()
        for reward, r in scored:
            if reward < threshold or len(seen) >= max_per_prompt:
                break
            if r["response"] in seen:
                continue
            seen.add(r["response"])
            kept.append({**r, "abstained": abstain})
    return kept


RULES = [("shipped", False, None), ("vote-required", True, None)] + \
        [(f"min-share {q}", False, q) for q in (0.2, 0.25, 0.3, 0.4)] + \
        [(f"required + min-share {q}", True, q) for q in (0.2, 0.25, 0.3, 0.4)]


def main() -> int:
    recs, meta = key_pool("sql")
    rows = []
    for name, required, q in RULES:
        for k in (2, 4, 8, 16):
            kept = select(recs, k, required=required, min_share=q, threshold=meta["threshold"],
                          max_per_prompt=meta["max_per_prompt"])
            rows.append({"rule": name, "required": required, "min_share": q, "k": k, "kept": len(kept),
                         "kept_correct": sum(r["ok"] for r in kept),
                         "kept_from_abstaining_groups": sum(r["abstained"] for r in kept),
                         "prompts": len({r["prompt_id"] for r in kept})})
    out = {"task": "sql", **meta, "candidates": len(recs),
           "gold_correct_candidates": sum(r["ok"] for r in recs), "rows": rows}
    path = HERE / "results" / "selection-rules-sql.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"{'rule':28} {'K':>3} {'kept':>5} {'correct':>8} {'precision':>9} {'from abstaining':>16}")
    for r in rows:
        prec = f"{r['kept_correct'] / r['kept']:.0%}" if r["kept"] else "-"
        print(f"{r['rule']:28} {r['k']:>3} {r['kept']:>5} {r['kept_correct']:>8} {prec:>9} "
              f"{r['kept_from_abstaining_groups']:>16}")
    print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
