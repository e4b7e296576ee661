"""Which prompts and examples to train on, beyond the reward: a consensus band and class balance (pure; no model).

* **Consensus band** (SeRL, Fang et al. 2025: train on prompts whose majority ratio is in [0.2, 0.8]):
  ``score.band: [lo, hi]`` keeps a prompt only when the share of its K candidates that give the most common
  normalized answer (:func:`opentao.text.normalize_answer`; unanswered candidates count in K) lies in
  ``[lo, hi]``. Below ``lo`` the vote is noise; above ``hi`` every sample agrees, which teaches little and is how
  a collapse feeds itself. Answers are compared as text (for SQL, the query text, not its result set).
* **Class balance** for categorical answers (``train.balance_classes``): a *class* is a normalized answer that
  candidates give for many different prompts (at least ``max(3, 10%)`` of the round's prompts — "yes"/"no" on
  docqa, never a span or a query). The kept examples' class shares are capped at the candidates' own share of that
  class plus ``train.class_slack``: examples of an over-represented class are dropped (lowest reward first, then
  longest) until every class fits. Examples whose answer is not a class are kept and not counted.
  ``train.class_target: uniform`` caps every class at ``1 / n_classes + class_slack`` instead: a label-free prior
  that the classes are equally likely, for when the candidates' own shares are the model's bias (the base answers
  *no* to nearly every docqa yes/no question, and a cap at its own share passes that bias on).
"""

from __future__ import annotations

import math
from collections import defaultdict

from opentao.records import Candidate, TrainExample
from opentao.text import normalize_answer, tally

__all__ = ["balance_classes", "band_prompts", "categorical_classes", "top_share"]


def _key(c: Candidate) -> str:
    return normalize_answer(c.answer)


def top_share(group: list[Candidate]) -> float:
    """Share of the group's candidates that give its most common non-empty normalized answer (0 when none)."""
    counts = tally(_key(c) or None for c in group)
    return max(counts.values()) / len(group) if counts and group else 0.0


def band_prompts(candidates: list[Candidate], lo: float, hi: float) -> dict[str, float]:
    """``{prompt id: top share}`` of the prompts whose top share is inside ``[lo, hi]``."""
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        groups[c.prompt_id].append(c)
    shares = {pid: top_share(g) for pid, g in groups.items()}
    return {pid: s for pid, s in shares.items() if lo <= s <= hi}


def categorical_classes(candidates: list[Candidate]) -> dict[str, float]:
    """``{class: its share among the candidates that give some class}`` (module doc); {} when there is none."""
    prompts_of: dict[str, set[str]] = defaultdict(set)
    for c in candidates:
        if k := _key(c):
            prompts_of[k].add(c.prompt_id)
    n_prompts = len({c.prompt_id for c in candidates})
    need = max(3, math.ceil(0.1 * n_prompts))
    classes = {k for k, ps in prompts_of.items() if len(ps) >= need}
    counts = tally(k for c in candidates if (k := _key(c)) in classes)
    total = sum(counts.values())
    return {k: n / total for k, n in counts.items()} if total else {}


def balance_classes(examples: list[TrainExample], candidates: list[Candidate], slack: float,
                    target: str = "candidates") -> tuple[list[TrainExample], dict]:
    """Drop examples of over-represented classes (module doc); returns ``(kept, stats)``. ``target`` is
    ``"candidates"`` (cap at the candidates' share + slack) or ``"uniform"`` (at ``1 / n_classes`` + slack)."""
    if target not in ("candidates", "uniform"):
        raise ValueError(f"class target must be 'candidates' or 'uniform', got {target!r}")
    shares = categorical_classes(candidates)
    caps = {k: 1 / len(shares) for k in shares} if target == "uniform" else shares
    by_id = {c.candidate_id: c for c in candidates}
    cls = {i: k for i, e in enumerate(examples)
           if (c := by_id.get(e.chosen_id)) is not None and (k := _key(c)) in shares}
    members: dict[str, list[int]] = defaultdict(list)
    for i, k in cls.items():
        members[k].append(i)
    for k in members:  # the ones to keep first: higher reward, then shorter, then id
        members[k].sort(key=lambda i: (-examples[i].chosen_score, len(examples[i].chosen), examples[i].chosen_id))
    n = {k: len(v) for k, v in members.items()}
    total = sum(n.values())
    while True:  # shrink until every class fits its cap at the new total (terminates: total only decreases)
        capped = {k: min(len(members[k]), math.floor((caps[k] + slack) * total + 1e-9)) for k in members}
        if sum(capped.values()) == total:
            break
        total = sum(capped.values())
        n = capped
    keep = {i for k, idx in members.items() for i in idx[: n[k]]}
    kept = [e for i, e in enumerate(examples) if i not in cls or i in keep]
    stats = {"candidate_class_shares": shares, "target": target,
             "kept_class_counts_before": {k: len(v) for k, v in members.items()},
             "kept_class_counts_after": {k: n[k] for k in members}, "dropped": len(examples) - len(kept)}
    return kept, stats
