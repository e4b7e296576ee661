"""Self-consistency: reward the candidates that agree with the group's plurality answer (no labels).

Two ways to key a candidate:

* ``mode="answer"``: :func:`opentao.text.normalize_answer` of ``candidate.answer`` (empty → no key);
* ``mode="sql_result"``: the :func:`~opentao.sqlsafe.result_signature` of the candidate's SQL run safely
  read-only; only *valid* results (ok, non-empty, not truncated, not a whole table, not degenerate: see
  :mod:`opentao.sqlsafe.degenerate`; ``degenerate=False`` turns that check off) get a key, so broken or
  degenerate queries can never win the vote.

Scoring: 1.0 for a candidate whose key is a plurality key, 0.0 for a different key or no key. **Ties**: every
key tied for the highest count is a plurality key, so all their candidates get 1.0 (the vote cannot tell them
apart; other scorers can). With ``graded=True`` the score is instead the share of voters (candidates with a
key) that share the candidate's key, and 0.0 for candidates without a key. If no key reaches ``min_votes``
votes there is no consensus and the scorer abstains for the whole group (all None); with
``require_plurality=True`` it also abstains when the top count is tied (no strict plurality).

``no_consensus="zero"`` scores such a group 0.0 instead of abstaining. An abstention leaves the reward to the
other scorers (the combined reward is the mean over the scorers that did not abstain), so with ``sql_exec`` beside
the vote any query that merely runs passes a threshold of 1.0 when no two samples agree; ``"zero"`` makes
agreement a requirement (benchmarks/results/selection-rules-sql.json measures both).

:func:`soft_vote` (``type: soft_vote``) is ``graded=True, require_plurality=True``: the candidate's answer's vote
share (EMPO, Zhang et al. 2025: the share of its semantic cluster), abstaining when no answer leads.
"""

from __future__ import annotations

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.score.sql import SqlExecScorer
from opentao.sqlsafe import result_signature
from opentao.text import normalize_answer, plurality, tally

__all__ = ["MajorityVoteScorer", "soft_vote"]

_MODES = ("answer", "sql_result")
_NO_CONSENSUS = ("abstain", "zero")


class MajorityVoteScorer:
    """Plurality vote over the group's candidates (see the module docstring for the exact rule)."""

    def __init__(
        self,
        mode: str = "answer",
        db: str | None = None,
        name: str = "majority_vote",
        min_votes: int = 2,
        graded: bool = False,
        timeout_s: float = 2.0,
        max_rows: int = 1000,
        degenerate: bool = True,
        require_plurality: bool = False,
        no_consensus: str = "abstain",
    ) -> None:
        if mode not in _MODES:
            raise TaoError(f"majority_vote: unknown mode {mode!r}; use one of {', '.join(_MODES)}")
        if isinstance(min_votes, bool) or not isinstance(min_votes, int) or min_votes < 1:
            raise TaoError(f"majority_vote: min_votes must be an integer >= 1, got {min_votes!r}")
        if no_consensus not in _NO_CONSENSUS:
            raise TaoError(f"majority_vote: no_consensus must be one of {', '.join(_NO_CONSENSUS)}, "
                           f"got {no_consensus!r}")
        self.no_consensus = no_consensus
        self.mode = mode
        self.name = name
        self.min_votes = min_votes
        self.graded = bool(graded)
        self.require_plurality = bool(require_plurality)
        self.executor: SqlExecScorer | None = None
        if mode == "sql_result":
            if not db:
                raise TaoError("majority_vote: mode 'sql_result' needs 'db' (a SQLite file)")
            self.executor = SqlExecScorer(db, timeout_s=timeout_s, max_rows=max_rows, name=f"{name}:exec",
                                          degenerate=degenerate)
        # mode "answer" ignores db (a config may set one db for every scorer)

    def key(self, candidate: Candidate) -> str | None:
        """The candidate's vote, or None when it has no valid answer."""
        if self.mode == "answer":
            return normalize_answer(candidate.answer) or None
        assert self.executor is not None
        result, reason = self.executor.check(self.executor.sql_of(candidate))
        return None if reason else result_signature(result)

    def counters(self) -> dict[str, int]:
        """The SQL executor's degenerate-result counts (mode ``sql_result``; empty otherwise)."""
        return self.executor.counters() if self.executor is not None else {}

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        if self.executor is not None:
            self.executor.reset_cache()
        return self.vote([self.key(c) for c in candidates])

    def vote(self, keys: list[str | None]) -> list[float | None]:
        """The group's scores from its candidates' keys (:meth:`key`; None = no key), in their order."""
        counts = tally(keys)
        winners = plurality(counts)
        if not counts or max(counts.values()) < self.min_votes or (self.require_plurality and len(winners) > 1):
            return [0.0 if self.no_consensus == "zero" else None] * len(keys)
        if self.graded:
            voters = sum(counts.values())
            return [counts[k] / voters if k is not None else 0.0 for k in keys]
        return [1.0 if k in winners else 0.0 for k in keys]

    def __repr__(self) -> str:
        return (f"MajorityVoteScorer(mode={self.mode!r}, name={self.name!r}, min_votes={self.min_votes}, "
                f"no_consensus={self.no_consensus!r})")


def soft_vote(mode: str = "answer", db: str | None = None, name: str = "soft_vote", min_votes: int = 2,
              timeout_s: float = 2.0, max_rows: int = 1000, degenerate: bool = True) -> MajorityVoteScorer:
    """The soft vote (module doc): each candidate scores its answer's share of the group's votes; abstains for the
    whole group when no answer has a strict plurality (or fewer than ``min_votes`` votes)."""
    return MajorityVoteScorer(mode=mode, db=db, name=name, min_votes=min_votes, graded=True, timeout_s=timeout_s,
                              max_rows=max_rows, degenerate=degenerate, require_plurality=True)
