"""The label-free docqa reward (a scorer plug-in): format x grounding, plus the group's plurality answer."""

from __future__ import annotations


from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.tasks.docqa.grade import answer_line, grounded, is_strict_yes_no, squad_normalize, yes_no
from opentao.tasks.docqa.prompts import MAX_SPAN_WORDS, parse_prompt
from opentao.text import plurality, tally

__all__ = ["GroundedScorer"]


class GroundedScorer:
    """Label-free docqa reward: format × grounding, plus agreement with the group's plurality answer.

    Plug-in spec: ``{type: "opentao.tasks.docqa:GroundedScorer", vote_weight: 0.5, calibrate: false}``. Abstains
    on prompts that are not docqa prompts (so it can sit in a multi-task config).

    ``calibrate=True`` — a **batch-calibrated** yes/no vote (after Batch Calibration, Zhou et al. ICLR 2024, which
    divides a classifier's probabilities by their mean over the batch). Plain majority vote over a model's own
    samples amplifies its answer prior: a model that says "no" 80% of the time wins "no" on almost every prompt,
    and training on those winners collapses it to a constant (the TTRL paper's caveat). :meth:`fit` estimates the
    prior ``q_a`` — the mean over the round's yes/no prompts of the share of valid candidates answering ``a`` — and
    a yes/no group's winner is then the answer with the largest ``share_a / q_a``: the answer this prompt draws
    *more often than the model usually gives it*. Span prompts keep the plain plurality. Simplifications: a
    histogram of K samples stands in for the probabilities, and before any ``fit`` (or when no yes/no group had a
    valid answer) the prior is uniform, i.e. the plain vote.
    """

    def __init__(self, vote_weight: float = 0.5, calibrate: bool = False, name: str = "docqa_grounded") -> None:
        if not 0.0 <= float(vote_weight) <= 1.0:
            raise TaoError(f"docqa_grounded: vote_weight must be in [0, 1], got {vote_weight!r}")
        if not isinstance(calibrate, bool):
            raise TaoError(f"docqa_grounded: calibrate must be true or false, got {calibrate!r}")
        self.vote_weight = float(vote_weight)
        self.calibrate = calibrate
        self.prior: dict[str, float] = {"yes": 0.5, "no": 0.5}
        self.name = name

    def key(self, text: str, passage: str, kind: str) -> str | None:
        """The candidate's normalized answer when it passes format and grounding, else None."""
        if kind == "yesno":
            return yes_no(text) if is_strict_yes_no(text) else None
        ans = answer_line(text)
        if len(text.strip().splitlines()) != 1 or not 1 <= len(ans.split()) <= MAX_SPAN_WORDS:
            return None
        return squad_normalize(ans) if grounded(ans, passage) else None

    def _keys(self, prompt: Prompt, candidates: list[Candidate]) -> tuple[str, list[str | None]] | None:
        parsed = parse_prompt(prompt.messages)
        if parsed is None:
            return None
        passage, _question, kind = parsed
        return kind, [self.key(c.response, passage, kind) for c in candidates]

    def fit(self, groups: list[tuple[Prompt, list[Candidate]]]) -> None:
        """The yes/no answer prior over the round's groups (used only with ``calibrate``)."""
        shares = []
        for prompt, cands in groups:
            got = self._keys(prompt, cands)
            if got is None or got[0] != "yesno":
                continue
            votes = tally(got[1])
            if votes:
                shares.append(votes.get("yes", 0) / sum(votes.values()))
        q = sum(shares) / len(shares) if shares else 0.5
        self.prior = {"yes": q, "no": 1.0 - q}

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        got = self._keys(prompt, candidates)
        if got is None:
            return [None] * len(candidates)
        kind, keys = got
        counts = tally(keys)
        if self.calibrate and kind == "yesno" and counts:
            weight = {k: n / max(self.prior[k], 1e-9) for k, n in counts.items()}
        else:
            weight = counts
        winners = plurality(weight)
        base = 1.0 - self.vote_weight
        return [0.0 if k is None else base + (self.vote_weight if k in winners else 0.0) for k in keys]
