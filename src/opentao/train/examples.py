"""From scored candidates to training examples (pure; no model).

- ``rft`` (rejection-sampling fine-tuning, a.k.a. best-of-K SFT; Zelikman et al. 2022 STaR, Yuan et al. 2023
  RFT): per prompt keep the top-scored candidate(s) whose combined reward reaches the threshold.
- ``dpo`` (Rafailov et al. 2023): per prompt pair the best against the worst candidate when their reward gap is
  at least ``min_margin``.
- ``grpo`` (Shao et al. 2024, DeepSeekMath): *every* scored candidate of a group, each carrying its group-relative
  advantage :func:`group_advantages`; groups whose rewards are all equal carry no signal and are dropped.

Either way the example's prompt is the **plain** prompt: strategies such as chain-of-thought were only used to
explore, and the model learns to give the chosen response directly. Ties are broken toward the shorter
response (so tuning does not grow answer length, and inference cost stays what it was), then by id.
"""

from __future__ import annotations

import statistics

from opentao.records import Candidate, Prompt, TrainExample

STD_EPS = 1e-4  # TRL GRPOTrainer: advantages / (std + 1e-4)


def group_advantages(rewards: list[float], *, scale: bool = True) -> list[float] | None:
    """GRPO's advantages of one group: ``r - mean(r)``, divided by ``std(r) + 1e-4`` when ``scale``.

    ``std`` is the sample standard deviation (Bessel-corrected, as TRL's ``nanstd``). None for a group with fewer
    than two rewards or with zero variance: every advantage would be 0, so it teaches nothing.
    """
    if len(rewards) < 2 or max(rewards) - min(rewards) <= 1e-12:
        return None
    mean = statistics.fmean(rewards)
    if not scale:
        return [r - mean for r in rewards]
    std = statistics.stdev(rewards)
    return [(r - mean) / (std + STD_EPS) for r in rewards]


def _rank_key(item: tuple[Candidate, float]) -> tuple[float, int, str]:
    cand, score = item
    return (-score, len(cand.response), cand.candidate_id)


def build_examples(
    prompts: dict[str, Prompt],
    candidates: list[Candidate],
    rewards: dict[str, float | None],
    *,
    method: str,
    threshold: float | None = None,
    min_margin: float = 0.5,
    max_per_prompt: int = 1,
    round_: int = 0,
    scale_rewards: bool = True,
) -> list[TrainExample]:
    """``rewards`` maps candidate_id → combined reward (None = every scorer abstained; such candidates are skipped,
    as are empty responses, for every method)."""
    groups: dict[str, list[tuple[Candidate, float]]] = {}
    for cand in candidates:
        r = rewards.get(cand.candidate_id)
        if r is not None and cand.response.strip():
            groups.setdefault(cand.prompt_id, []).append((cand, float(r)))
    examples: list[TrainExample] = []
    for pid in sorted(groups):
        ranked = sorted(groups[pid], key=_rank_key)
        best, best_score = ranked[0]
        plain = prompts[pid].messages
        if method == "rft":
            floor = threshold if threshold is not None else 1e-9  # default: anything above zero reward
            seen: set[str] = set()
            for cand, score in ranked:
                if score < floor or len(seen) >= max_per_prompt:
                    break
                if cand.response in seen:
                    continue
                seen.add(cand.response)
                examples.append(
                    TrainExample(pid, "rft", plain, cand.response, chosen_id=cand.candidate_id,
                                 chosen_score=score, round=round_)
                )
        elif method == "dpo":
            worst, worst_score = max(ranked, key=lambda it: (-it[1], -len(it[0].response), it[0].candidate_id))
            if best_score - worst_score >= min_margin and best.response != worst.response:
                examples.append(
                    TrainExample(pid, "dpo", plain, best.response, worst.response, best.candidate_id,
                                 worst.candidate_id, best_score, worst_score, round_)
                )
        elif method == "grpo":
            ordered = sorted(groups[pid], key=lambda it: it[0].candidate_id)
            adv = group_advantages([score for _, score in ordered], scale=scale_rewards)
            for (cand, score), a in zip(ordered, adv or []):
                examples.append(TrainExample(pid, "grpo", plain, cand.response, chosen_id=cand.candidate_id,
                                             chosen_score=score, round=round_, advantage=a))
        else:
            raise ValueError(f"unknown method {method!r}")
    return examples
