"""The oracle arm's reward: a scorer plugin that reads **gold** (benchmark only; never in a TAO config).

``{"type": "opentao.bench.oracle:GoldScorer", "task": "sql", "gold": "train_gold.jsonl", "db": "chinook.sqlite"}``
pays 1.0 to a candidate whose response the task's own grader (:func:`opentao.tasks.get_task` ``.grader``, the
one ``tao eval`` uses) marks correct against the prompt's gold row, 0.0 otherwise, and abstains on a prompt with
no gold row. With ``train.threshold: 1.0`` the train stage then keeps gold-correct candidates only: RL with the
gold reward in its rejection-sampling form, an upper bound on what a label-free scorer could pick from the
same samples.
"""

from __future__ import annotations

from opentao.data import read_table_rows
from opentao.records import Candidate, Prompt


class GoldScorer:
    name = "gold"

    def __init__(self, task: str, gold: str, db: str | None = None) -> None:
        from opentao.tasks import get_task

        self.grader = get_task(task).grader(db)
        self.gold = {str(r["id"]): r for r in read_table_rows(gold)}

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        row = self.gold.get(prompt.prompt_id)
        if row is None:
            return [None] * len(candidates)
        return [float(self.grader.grade(row, c.response)[0]) for c in candidates]
