"""Hand-made run directories for tests that read a run's tables."""

from __future__ import annotations

from pathlib import Path

from opentao.records import Candidate, Prompt, Score
from opentao.store import RunStore


def hand_made_run(run: Path, n: int = 6) -> None:
    """A round-1 run: prompt qi has candidates with answers; 'right' prefers the correct one, 'wrong' the other."""
    store = RunStore(run)
    prompts = [Prompt(f"q{i}", [{"role": "user", "content": f"What is {i} + {i}?"}], round=1) for i in range(n)]
    store.write_part("prompts", "r1", prompts, Prompt.SCHEMA)
    cands, scores = [], []
    for i in range(n):
        right = str(2 * i)
        answers = [right, str(2 * i + 1), str(2 * i + 1), right] if i % 2 else [right, "7x", "8x", "9x"]
        for j, a in enumerate(answers):
            cid = f"q{i}#{j}"
            cands.append(Candidate(f"q{i}", cid, "plain", [], f"The answer is {a}", f"The answer is {a}", a, 1))
            ok = a == str(2 * i)
            scores += [Score(f"q{i}", cid, "right", 1.0 if ok else 0.0, 1),
                       Score(f"q{i}", cid, "wrong", 0.0 if ok else 1.0, 1),
                       Score(f"q{i}", cid, "combined", 0.0 if ok else 1.0, 1)]
    store.write_part("candidates", "r1-00000", cands, Candidate.SCHEMA)
    store.write_part("scores", "r1-00000", scores, Score.SCHEMA)
