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
* ``vote-required`` (``majority_vote: {no_consensus: zero}``): a candidate must be in the plurality (a vote
  without a consensus scores 0, so the group keeps nothing);
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


def key_pool(task: str = "sql") -> tuple[list[dict], dict, dict]:
    """One record per candidate of the K=16 pool (the candidate, its sql_exec score, its vote key, gold ok), the
    round's prompts by id, and the run settings the selection uses."""
    from opentao.bench.arms import Runner
    from opentao.bench.table import Bench
    from opentao.data import read_table_rows
    from opentao.records import Candidate, Prompt
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
    vote.executor = exe  # one executor: the vote's keys reuse the results sql_exec just ran (cached per group)
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for r in pool.read("candidates", 1):
        c = Candidate.from_row(r)
        groups[c.prompt_id].append(c)
    recs = []
    for pid, cands in sorted(groups.items()):
        exec_scores = exe.score_group(None, cands)  # type: ignore[arg-type]  (resets the cache for this group)
        for c, s in zip(cands, exec_scores):
            recs.append({"cand": c, "slot": int(c.candidate_id.rsplit("#", 1)[1]), "exec": float(s),
                         "key": vote.key(c), "ok": bool(grader.grade(gold[c.prompt_id], c.response)[0])})
    prompts = {r["prompt_id"]: Prompt.from_row(r) for r in pool.read("prompts", 1)}
    cfg = runner.config(task, bench.work / "full" / task / "pool-k16")
    return recs, prompts, {"threshold": cfg.train.threshold, "max_per_prompt": cfg.train.max_per_prompt,
                           "prompts": len(groups), "pool": str(pool.root.relative_to(HERE))}


def select(recs: list[dict], prompts: dict, k: int, *, required: bool, min_share: float | None, threshold: float,
           max_per_prompt: int) -> list[dict]:
    """The rft selection (:func:`opentao.train.examples.build_examples`) on the first ``k`` slots, with the vote of
    :class:`~opentao.score.vote.MajorityVoteScorer` at ``min_votes`` from ``min_share`` and ``no_consensus`` zero
    when ``required`` (abstain otherwise), combined with sql_exec by :func:`opentao.score.combine.combine`."""
    from opentao.score.combine import combine
    from opentao.score.vote import MajorityVoteScorer
    from opentao.train.examples import build_examples

    groups: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        if r["slot"] < k:
            groups[r["cand"].prompt_id].append(r)
    vote = MajorityVoteScorer(min_votes=max(2, math.ceil(min_share * k)) if min_share else 2,
                              no_consensus="zero" if required else "abstain")
    rewards: dict[str, float | None] = {}
    abstained: set[str] = set()
    for pid, g in groups.items():
        votes = vote.vote([r["key"] for r in g])
        if 1.0 not in votes:  # no consensus: a group with one has its plurality at 1.0
            abstained.add(pid)
        combined = combine({"sql_exec": [r["exec"] for r in g], "majority_vote": votes}, {})
        rewards.update((r["cand"].candidate_id, c) for r, c in zip(g, combined))
    by_id = {r["cand"].candidate_id: r for g in groups.values() for r in g}
    examples = build_examples(prompts, [r["cand"] for g in groups.values() for r in g], rewards, method="rft",
                              threshold=threshold, max_per_prompt=max_per_prompt)
    return [{**by_id[e.chosen_id], "abstained": e.prompt_id in abstained} for e in examples]


RULES = [("shipped", False, None), ("vote-required", True, None)] + \
        [(f"min-share {q}", False, q) for q in (0.2, 0.25, 0.3, 0.4)] + \
        [(f"required + min-share {q}", True, q) for q in (0.2, 0.25, 0.3, 0.4)]


def main() -> int:
    recs, prompts, meta = key_pool("sql")
    rows = []
    for name, required, q in RULES:
        for k in (2, 4, 8, 16):
            kept = select(recs, prompts, k, required=required, min_share=q, threshold=meta["threshold"],
                          max_per_prompt=meta["max_per_prompt"])
            rows.append({"rule": name, "required": required, "min_share": q, "k": k, "kept": len(kept),
                         "kept_correct": sum(r["ok"] for r in kept),
                         "kept_from_abstaining_groups": sum(r["abstained"] for r in kept),
                         "prompts": len({r["cand"].prompt_id for r in kept})})
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
