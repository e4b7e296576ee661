"""A small synthetic run directory with every table and summary, for the inspect / report / dashboard tests.

Round 1, two prompts (p1, p2) of three candidates each, two scorers. Candidate p1#2's response carries a
``<script>`` tag and rich markup: it must come out inert in HTML and literal in the terminal.
"""

from __future__ import annotations

from pathlib import Path

from opentao.records import Candidate, EvalResult, Integrity, Prompt, Score, TrainExample
from opentao.store import RunStore

EVIL = "<script>window.__pwned = 1</script>[bold red]not markup[/] SELECT 1"
# (prompt, slot) → (sql_exec, vote, combined, answer, num_tokens)
SCORES = {
    ("p1", 0): (1.0, 1.0, 1.0, "a", 10),
    ("p1", 1): (1.0, 0.0, 0.5, "b", 20),
    ("p1", 2): (0.0, None, 0.0, "", 30),
    ("p2", 0): (1.0, 1.0, 1.0, "a", 5),
    ("p2", 1): (1.0, 1.0, 1.0, "a", 5),
    ("p2", 2): (0.0, 0.0, 0.0, "c", 10),
}
LOG_HISTORY = [
    {"step": 1, "epoch": 0.5, "loss": 2.0, "learning_rate": 1e-4, "grad_norm": 3.0},
    {"step": 2, "epoch": 1.0, "loss": 1.5, "learning_rate": 5e-5, "grad_norm": 2.0},
    {"step": 2, "epoch": 1.0, "train_runtime": 9.0, "train_loss": 1.75},
]


def make_run(root: Path, *, evil: str = EVIL) -> Path:
    store = RunStore(root)
    prompts = [Prompt(pid, [{"role": "user", "content": f"schema...\nQuestion: question {pid}?"}], 1)
               for pid in ("p1", "p2")]
    store.write_part("prompts", "r1", prompts, Prompt.SCHEMA)
    cands, scores = [], []
    for (pid, slot), (sql, vote, comb, answer, toks) in SCORES.items():
        cid = f"{pid}#{slot}"
        text = evil if cid == "p1#2" else f"SELECT {slot} -- {pid}"
        cands.append(Candidate(pid, cid, "plain" if slot % 2 == 0 else "cot", [], text, text, answer, 1, 0.7, toks))
        scores += [Score(pid, cid, "sql_exec", sql, 1), Score(pid, cid, "majority_vote", vote, 1),
                   Score(pid, cid, "combined", comb, 1)]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    store.write_part("scores", "r1-00000", scores, Score.SCHEMA)
    store.write_part("train_examples", "r1", [
        TrainExample("p1", "sft", prompts[0].messages, "SELECT 0 -- p1", chosen_id="p1#0", chosen_score=1.0, round=1),
        TrainExample("p2", "dpo", prompts[1].messages, "SELECT 0 -- p2", "SELECT 2 -- p2", "p2#0", "p2#2", 1.0, 0.0,
                     1),
    ], TrainExample.SCHEMA)
    evals = [EvalResult("base", f"e{i}", "no" if i else "yes", i == 0, 0, 2) for i in range(4)]
    evals += [EvalResult("round-1", f"e{i}", "no", i != 0, 1, 1) for i in range(4)]
    store.write_part("eval_results", "r0-base", evals[:4], EvalResult.SCHEMA)
    store.write_part("eval_results", "r1-round-1", evals[4:], EvalResult.SCHEMA)
    store.write_part("integrity", "r1", [
        Integrity("combined", "combined", 2, 2, 6, 0.0, 1.0, 0.5, 1.0, 0.9, 1.0, 2, 0.0, None, "useful", 1)],
        Integrity.SCHEMA)
    store.write_summary("eval-r0-base", {"task": "docqa", "model": "base", "n": 4, "correct": 1, "accuracy": 0.25,
                                         "ci95": [0.05, 0.7]})
    store.write_summary("eval-r1-round-1", {"task": "docqa", "model": "round-1", "n": 4, "correct": 3,
                                            "accuracy": 0.75, "ci95": [0.3, 0.95]})
    store.write_summary("train-r1", {"examples": 2, "steps": 2, "log_history": LOG_HISTORY})
    store.write_summary("run", {"base": {"wall_s": 3.0}, "wall_s": 40.0, "rounds": [
        {"round": 1, "generate": {"wall_s": 16.0}, "score": {"wall_s": 2.0}, "train": {"wall_s": 9.0},
         "eval": {"wall_s": 4.0}}]})
    return root
