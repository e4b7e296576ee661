"""Reward integrity: does a label-free scorer actually prefer correct candidates? Checked against *optional*
gold labels that are never used for training.

For each scorer (and the ``combined`` reward), over the groups that have gold:

* ``best_of_k`` — selection accuracy: the share of groups whose top-scored candidate is correct (ties at the
  top count the mean correctness of the tied candidates, i.e. a random tie-break). Compare with
  ``mean_acc`` (picking a candidate at random) and ``oracle`` (pass@K: some candidate is correct);
* ``auc`` — area under the ROC curve of score vs correctness over all scored candidates (Mann–Whitney, ties
  count ½); ``auc_within`` — the same inside each group, averaged over groups with both a correct and a
  wrong candidate (what matters for picking within a group: it is blind to prompt difficulty);
* ``zero_var`` — the share of groups where the scorer gives every candidate the same score (no learning
  signal: DAPO, Yu et al. 2025, filters such groups out of GRPO batches);
* ``vote_acc`` — label accuracy of a *score-weighted* vote (each candidate votes for its answer with its
  within-group rank as weight); with a constant scorer it is TTRL's majority-vote label accuracy (Zuo et
  al. 2025, "TTRL: Test-Time Reinforcement Learning"), reported on its own as ``majority_label_accuracy``;
* ``degenerate_paid`` — how many *degenerate-but-valid* candidates the scorer paid for (score > 0): SQL that runs
  and returns rows but answers nothing (an all-NULL/zero single row, or a required literal absent from its
  column: :mod:`opentao.sqlsafe.degenerate`). The summary also gives ``degenerate_candidates`` (how many
  there were) and ``degenerate_correct`` (how many of those the gold agrees with: a real answer of 0).

**Verdict.** ``undetermined`` when too little can be concluded (fewer than ``MIN_MIXED_GROUPS`` groups hold
both a correct and a wrong scored candidate: one or two lucky groups must not block training), ``no signal`` when every group has zero variance, ``no better than random`` when ``auc <= 0.5``
or ``best_of_k <= mean_acc``, else ``ok``. ``tao train`` refuses to train when the combined reward or any
scorer other than a guard is no better than random (``--force`` overrides).

A candidate is graded by the task's grader, the one ``tao eval`` uses (:mod:`opentao.tasks`): a gold ``sql`` by
the sql task's execution accuracy (its SQL run read-only returns the gold result set); a gold row that holds the
run's ``eval.task`` gold fields (docqa's ``kind``/``answer``, instruct's ``constraints``/``source``/``reference``)
by that task's ``grade`` on the candidate's response. A bare gold ``answer`` (no task fields) is matched after
normalization (:func:`opentao.text.normalize_answer`). The vote key is the result signature for SQL, the
normalized answer otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentao.data import _messages_of, prompt_id_of, read_table_rows
from opentao.errors import TaoError
from opentao.records import Candidate, Integrity
from opentao.score.combine import normalize_scores
from opentao.store import RunStore
from opentao.text import normalize_answer, plurality, tally

__all__ = ["GUARD_TYPES", "GradedCandidate", "auc", "check_integrity", "load_gold", "majority_label_accuracy",
           "run_integrity", "scorer_integrity"]

MIN_MIXED_GROUPS = 5
GUARD_TYPES = {"length_penalty", "repetition_penalty", "relevance", "injection_guard"}
FAIL = "no better than random"


@dataclass
class GradedCandidate:
    correct: bool
    key: str | None  # the answer it votes for (None: no valid answer)
    scores: dict[str, float | None]
    degenerate: bool = False  # valid SQL whose result answers nothing (see the module doc)


# --- pure metrics ---------------------------------------------------------------------------------------
def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a random correct > score of a random wrong), ties ½; None without both classes."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    ranked = sorted(scores)
    # rank-sum form (average ranks for ties), O(n log n)
    rank_of: dict[float, float] = {}
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1] == ranked[i]:
            j += 1
        rank_of[ranked[i]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = sum(rank_of[s] for s in pos)
    return (r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def _vote_correct(group: list[GradedCandidate], weights: list[float]) -> float | None:
    """Correctness of the label with the largest total weight (ties: mean over the tied labels)."""
    totals = tally([c.key for c in group], weights)
    correct_of = {c.key: c.correct for c in group if c.key is not None}  # the last candidate's verdict per key
    tied = plurality(totals)
    return sum(correct_of[k] for k in tied) / len(tied) if tied else None


def majority_label_accuracy(groups: list[list[GradedCandidate]]) -> float | None:
    """TTRL's label accuracy: the share of groups whose plurality answer is correct (groups with no answer skipped)."""
    votes = [v for g in groups if (v := _vote_correct(g, [1.0] * len(g))) is not None]
    return sum(votes) / len(votes) if votes else None


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def scorer_integrity(groups: list[list[GradedCandidate]], scorer: str,
                     min_mixed: int = MIN_MIXED_GROUPS) -> dict[str, Any]:
    """The metrics of the module docstring for one scorer over graded groups."""
    bok, mean_acc, oracle, within, zero_var, votes = [], [], [], [], [], []
    all_scores: list[float] = []
    all_labels: list[bool] = []
    n_cands = n_abstained = mixed = degenerate_paid = 0
    for group in groups:
        n_cands += len(group)
        degenerate_paid += sum(1 for c in group if c.degenerate and (c.scores.get(scorer) or 0.0) > 0)
        scored = [(c.scores.get(scorer), c) for c in group]
        scored = [(s, c) for s, c in scored if s is not None]
        n_abstained += len(group) - len(scored)
        if not scored:
            continue
        values = [s for s, _ in scored]
        labels = [c.correct for _, c in scored]
        top = max(values)
        tied = [y for s, y in zip(values, labels) if s == top]
        bok.append(sum(tied) / len(tied))
        mean_acc.append(sum(labels) / len(labels))
        oracle.append(float(any(labels)))
        zero_var.append(float(len(set(values)) <= 1))
        a = auc(values, labels)
        if a is not None:
            within.append(a)
            mixed += 1
        all_scores.extend(values)
        all_labels.extend(labels)
        weights = normalize_scores([c.scores.get(scorer) for c in group], "rank")
        v = _vote_correct(group, [w if w is not None else 0.0 for w in weights])
        if v is not None:
            votes.append(v)
    m = {
        "groups": len(groups), "scored_groups": len(bok), "candidates": n_cands,
        "abstain_share": n_abstained / n_cands if n_cands else None,
        "best_of_k": _mean(bok), "mean_acc": _mean(mean_acc), "oracle": _mean(oracle),
        "auc": auc(all_scores, all_labels), "auc_within": _mean(within), "mixed_groups": mixed,
        "zero_var": _mean(zero_var), "vote_acc": _mean(votes), "degenerate_paid": degenerate_paid,
    }
    m["verdict"] = verdict(m, min_mixed)
    return m


def verdict(m: dict[str, Any], min_mixed: int = MIN_MIXED_GROUPS) -> str:
    if m["scored_groups"] and m["zero_var"] == 1.0:
        return "no signal"
    if not m["scored_groups"] or m["mixed_groups"] < max(1, min_mixed):
        return f"undetermined ({m['mixed_groups']} group(s) with both a correct and a wrong candidate)"
    reasons = []
    if m["auc"] is not None and m["auc"] <= 0.5:
        reasons.append(f"AUC {m['auc']:.2f} <= 0.5")
    if m["best_of_k"] <= m["mean_acc"]:
        reasons.append(f"best-of-K {m['best_of_k']:.2f} <= mean candidate accuracy {m['mean_acc']:.2f}")
    return f"{FAIL}: {'; '.join(reasons)}" if reasons else "ok"


# --- gold -----------------------------------------------------------------------------------------------
def load_gold(path: str, prompt_ids: Sequence[str], gold_fields: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Gold rows keyed by prompt id — assigned exactly as :func:`opentao.data.load_prompts` does (``prompt_id``
    or ``id`` column, else the hash of ``messages``/``prompt``) — restricted to the run's prompts.

    Each row needs a gold ``sql`` or ``answer``, or every one of ``gold_fields`` (a task's). TaoError when the file
    is bad or none of its ids is a prompt of the run.
    """
    rows = read_table_rows(path)
    if not rows:
        raise TaoError(f"{path}: the gold file is empty")
    gold: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows, 1):
        pid = row.get("prompt_id") or row.get("id")
        pid = str(pid) if pid not in (None, "") else prompt_id_of(_messages_of(row, f"{path}: row {i}"))
        has_task_fields = bool(gold_fields) and all(f in row for f in gold_fields)
        if not (isinstance(row.get("sql"), str) and row["sql"].strip()) and row.get("answer") in (None, "") \
                and not has_task_fields:
            raise TaoError(f"{path}: row {i}: a gold row needs a 'sql' or an 'answer'")
        gold[pid] = row
    wanted = set(prompt_ids)
    matched = {pid: row for pid, row in gold.items() if pid in wanted}
    if not matched:
        ex_gold, ex_run = sorted(gold)[:3], sorted(wanted)[:3]
        raise TaoError(f"{path}: none of its {len(gold)} ids match the run's {len(wanted)} prompts (gold ids "
                       f"{ex_gold}, run ids {ex_run}); the gold file must use the prompt file's ids")
    return matched


class _Grader:
    """Correctness and vote key of a candidate against one gold row, through the task's grader."""

    def __init__(self, db: str | None, task: str | None = None):
        from opentao.tasks import get_task

        self.db = db
        self.task = get_task(task) if task else None
        self._sql = None
        self._task_grader = None
        self._degenerate = None

    def grade(self, cand: Candidate, gold: dict[str, Any]) -> tuple[bool, str | None, bool]:
        """``(correct, vote key, degenerate)``."""
        if isinstance(gold.get("sql"), str) and gold["sql"].strip():
            return self._grade_sql(cand, gold["sql"])
        key = normalize_answer(cand.answer) or None
        task = self.task
        if task is not None and not task.needs_db and all(f in gold for f in task.gold_fields):
            if self._task_grader is None:
                self._task_grader = task.grader(self.db)
            return self._task_grader.grade(gold, cand.response)[0], key, False
        return key is not None and key == normalize_answer(str(gold["answer"])), key, False

    def _is_degenerate(self, sql: str, rows: list[tuple]) -> bool:
        from opentao.sqlsafe import DegenerateChecker, run_sql_readonly

        if not rows:
            return False
        if self._degenerate is None:
            db = self.db
            self._degenerate = DegenerateChecker(db, lambda q: run_sql_readonly(db, q, timeout_s=5.0, max_rows=1))
        return bool(self._degenerate.reason(sql, rows))

    def _grade_sql(self, cand: Candidate, gold_sql: str) -> tuple[bool, str | None, bool]:
        from opentao.score.sql import SqlExecScorer
        from opentao.sqlsafe import result_signature
        from opentao.tasks import get_task

        if not self.db:
            raise TaoError("the gold file has SQL: the integrity check needs the database ('db:' in the config)")
        if self._sql is None:
            self._sql = get_task("sql").grader(self.db)
        sql = SqlExecScorer.sql_of(cand)
        correct, _reason, res = self._sql.grade_sql(sql, gold_sql)
        if res is None or not res.ok:
            return False, None, False
        return correct, result_signature(res), self._is_degenerate(sql, res.rows)


# --- stage ----------------------------------------------------------------------------------------------
def run_integrity(store: RunStore, gold_path: str, *, round_: int, db: str | None,
                  scorer_types: dict[str, str] | None = None, task: str | None = None) -> dict[str, Any]:
    """Grade the round's candidates against gold (through ``task``'s grader, see the module doc), compute every
    scorer's integrity, store table + summary."""
    scores = store.read("scores", round_)
    if not scores:
        raise TaoError(f"no scores for round {round_} in {store.root}: run 'tao score' first")
    cands = [Candidate.from_row(r) for r in store.read("candidates", round_)]
    grader = _Grader(db, task)
    gold = load_gold(gold_path, sorted({c.prompt_id for c in cands}), grader.task.gold_fields if grader.task else ())
    by_cand: dict[str, dict[str, float | None]] = defaultdict(dict)
    for r in scores:
        by_cand[r["candidate_id"]][r["scorer"]] = r["score"]
    groups: dict[str, list[GradedCandidate]] = defaultdict(list)
    for c in sorted(cands, key=lambda c: c.candidate_id):
        if c.prompt_id in gold:
            correct, key, degenerate = grader.grade(c, gold[c.prompt_id])
            groups[c.prompt_id].append(GradedCandidate(correct, key, by_cand.get(c.candidate_id, {}), degenerate))
    graded = [groups[pid] for pid in sorted(groups)]
    names = sorted({r["scorer"] for r in scores} - {"combined"}) + ["combined"]
    types = scorer_types or {}
    metrics = {}
    for name in names:
        m = scorer_integrity(graded, name)
        m["role"] = "combined" if name == "combined" else "guard" if types.get(name) in GUARD_TYPES else "scorer"
        metrics[name] = m
    summary = {
        "round": round_, "gold": str(gold_path), "groups_with_gold": len(graded),
        "groups_total": len({c.prompt_id for c in cands}),
        "candidate_accuracy": _mean([float(c.correct) for g in graded for c in g]),
        "majority_label_accuracy": majority_label_accuracy(graded),
        "degenerate_candidates": sum(c.degenerate for g in graded for c in g),
        "degenerate_correct": sum(c.degenerate and c.correct for g in graded for c in g),
        "scorers": metrics,
    }
    rows = [Integrity(round=round_, scorer=name, **{k: m[k] for k in Integrity.METRICS}) for name, m in metrics.items()]
    store.write_part("integrity", f"r{round_}", rows, Integrity.SCHEMA)
    store.write_summary(f"integrity-r{round_}", summary)
    return summary


def failing_scorers(summary: dict[str, Any]) -> list[str]:
    """Scorers (guards excepted) and the combined reward whose verdict is 'no better than random'."""
    bad = [name for name, m in summary.get("scorers", {}).items()
           if m.get("role") != "guard" and str(m.get("verdict", "")).startswith(FAIL)]
    return sorted(bad, key=lambda n: (n == "combined", n))


def check_integrity(store: RunStore, round_: int, *, force: bool = False) -> list[str]:
    """Before training: TaoError when a stored integrity check failed (unless ``force``). Returns the failures."""
    summary = store.read_summary(f"integrity-r{round_}")
    if not summary:
        return []
    bad = failing_scorers(summary)
    if bad and not force:
        detail = "; ".join(f"{n}: {summary['scorers'][n]['verdict']}" for n in bad)
        raise TaoError(f"refusing to train round {round_}: against the gold in {summary.get('gold')}, {detail}. "
                       "Fix the scorers or pass --force to train anyway")
    return bad
