"""Promotion gate evaluators: is the candidate model better than the one being served?

An evaluator compares two model folders and returns both scores on one scale (higher is better)::

    class GateEvaluator(Protocol):
        name: str
        def compare(self, current: str, candidate: str) -> GateScores: ...

Built-ins (``gate.kind``):

* ``sql``   — execution accuracy on a labeled dev set (``opentao.evaluate.sql.evaluate_sql``);
* ``exact`` — a labeled dev set of ``{"messages" | "prompt", "answer"}`` rows, greedy answers matched exactly
  (whitespace-normalised) or by containment (``match: contains``);
* ``judge`` — no labels: a pairwise judge model reads each held-out logged prompt with both models' greedy
  answers and says which is better, in both orders (A/B positions swapped, so position bias cancels); a win
  counts 1, a tie or an unreadable verdict 0.5. The candidate's score is its win rate, the current model's is
  one minus that. The judge runs through ``HFGenerator`` (greedy, a few tokens); any model folder works.
* ``reward`` — no labels: the round's own scorers (a verifier such as ``sql_exec``, ``json``, ``regex``) rate
  each model's greedy answer to every held-out logged prompt; the score is the mean combined reward. Each
  answer is scored alone, so group-relative scorers (``majority_vote``) have nothing to compare and abstain
  or score trivially — use per-answer verifiers here;
* ``"package.module:attr"`` — a plugin: called with ``(gate_config_dict, heldout_prompts)``, it returns an
  object with ``name`` and ``compare``.

Simplifications: the judge reads only the first ``A``/``B`` letter it writes; a small judge (the bundled 135M
model) is a weak signal — use a stronger local model folder as ``gate.judge_model`` when one is available.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentao.data import read_table_rows
from opentao.errors import TaoError
from opentao.generate.hf import GenRequest, HFGenerator
from opentao.records import Message, Prompt


@dataclass
class GateScores:
    current: float
    candidate: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)


class GateEvaluator(Protocol):
    name: str

    def compare(self, current: str, candidate: str) -> GateScores: ...


def greedy_answers(model: str, conversations: list[list[Message]], *, max_new_tokens: int, batch_size: int = 16,
                   dtype: str = "auto", device: str = "auto") -> list[str]:
    from opentao.models import load_model

    lm, tok = load_model(model, dtype=dtype, device=device)
    gen = HFGenerator(lm, tok, batch_size=batch_size)
    return [o.text for o in gen.generate([GenRequest(c, 0.0, max_new_tokens) for c in conversations])]


def _norm(text: str) -> str:
    return " ".join(text.split()).strip().lower()


class ExactMatchEvaluator:
    """Share of dev-set rows whose greedy answer equals (or contains) the gold ``answer``."""

    name = "exact"

    def __init__(self, data: str, *, match: str = "exact", max_examples: int | None = None,
                 max_new_tokens: int = 64, dtype: str = "auto", device: str = "auto"):
        from opentao.data import _messages_of

        rows = read_table_rows(data)[:max_examples] if max_examples else read_table_rows(data)
        if not rows or any("answer" not in r for r in rows):
            raise TaoError(f"{data}: a dev set needs rows with 'messages' (or 'prompt') and a gold 'answer'")
        if match not in ("exact", "contains"):
            raise TaoError(f"gate.match {match!r}: use exact or contains")
        self.conversations = [_messages_of(r, f"{data}: row {i}") for i, r in enumerate(rows, 1)]
        self.answers = [str(r["answer"]) for r in rows]
        self.match, self.max_new_tokens, self.dtype, self.device = match, max_new_tokens, dtype, device

    def accuracy(self, model: str) -> float:
        outs = greedy_answers(model, self.conversations, max_new_tokens=self.max_new_tokens, dtype=self.dtype,
                              device=self.device)
        if self.match == "exact":
            hits = [_norm(o) == _norm(a) for o, a in zip(outs, self.answers)]
        else:
            hits = [_norm(a) in _norm(o) for o, a in zip(outs, self.answers)]
        return sum(hits) / len(hits)

    def compare(self, current: str, candidate: str) -> GateScores:
        return GateScores(self.accuracy(current), self.accuracy(candidate), len(self.answers))


class SqlDevSetEvaluator:
    """Execution accuracy of both models on a labeled text-to-SQL dev set."""

    name = "sql"

    def __init__(self, data: str, db: str, *, max_examples: int | None = None, max_new_tokens: int = 128,
                 stop: tuple[str, ...] = (), dtype: str = "auto", device: str = "auto"):
        from opentao.evaluate.sql import load_eval_set

        load_eval_set(data, max_examples)
        self.kwargs = dict(max_examples=max_examples, max_new_tokens=max_new_tokens, stop=stop, dtype=dtype,
                           device=device)
        self.data, self.db = data, db

    def compare(self, current: str, candidate: str) -> GateScores:
        from opentao.evaluate.sql import evaluate_sql

        cur = evaluate_sql(current, self.data, self.db, label="current", **self.kwargs)
        cand = evaluate_sql(candidate, self.data, self.db, label="candidate", **self.kwargs)
        return GateScores(cur["accuracy"], cand["accuracy"], cur["n"],
                          {"current_ci95": cur["ci95"], "candidate_ci95": cand["ci95"]})


JUDGE_SYSTEM = "You are a strict, fair judge of answers written by AI assistants."
JUDGE_TEMPLATE = """Conversation so far:
{conversation}

Response A:
{a}

Response B:
{b}

Which response answers the last user message better (correct, helpful, concise)? Reply with one letter: A or B."""


def judge_messages(conversation: list[Message], a: str, b: str) -> list[Message]:
    convo = "\n".join(f"{m['role']}: {m['content']}" for m in conversation)
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": JUDGE_TEMPLATE.format(conversation=convo, a=a, b=b)}]


def parse_verdict(text: str) -> str | None:
    m = re.search(r"\b([AB])\b", text)
    return m.group(1) if m else None


class PairwiseJudgeEvaluator:
    """Win rate of the candidate over the current model on held-out logged prompts, by a judge model."""

    name = "judge"

    def __init__(self, prompts: list[Prompt], judge_model: str, *, max_new_tokens: int = 128,
                 max_examples: int | None = None, dtype: str = "auto", device: str = "auto"):
        if not prompts:
            raise TaoError("the judge gate needs held-out prompts: raise flywheel.holdout or log more traffic")
        self.prompts = prompts[:max_examples] if max_examples else prompts
        self.judge_model, self.max_new_tokens, self.dtype, self.device = judge_model, max_new_tokens, dtype, device

    def verdicts(self, pairs: list[tuple[list[Message], str, str]]) -> list[str | None]:
        from opentao.models import load_model

        lm, tok = load_model(self.judge_model, dtype=self.dtype, device=self.device)
        gen = HFGenerator(lm, tok, batch_size=16)
        outs = gen.generate([GenRequest(judge_messages(c, a, b), 0.0, 4) for c, a, b in pairs])
        return [parse_verdict(o.text) for o in outs]

    def compare(self, current: str, candidate: str) -> GateScores:
        convs = [p.messages for p in self.prompts]
        kw = dict(max_new_tokens=self.max_new_tokens, dtype=self.dtype, device=self.device)
        cur, cand = greedy_answers(current, convs, **kw), greedy_answers(candidate, convs, **kw)
        asked = [i for i in range(len(convs)) if cur[i].strip() != cand[i].strip()]
        pairs = [(convs[i], cur[i], cand[i]) for i in asked] + [(convs[i], cand[i], cur[i]) for i in asked]
        verdicts = self.verdicts(pairs) if pairs else []
        wins = 0.5 * 2 * (len(convs) - len(asked))  # identical answers: two ties
        unreadable = 0
        for j, v in enumerate(verdicts):
            candidate_is = "B" if j < len(asked) else "A"
            unreadable += v is None
            wins += 0.5 if v is None else float(v == candidate_is)
        rate = wins / (2 * len(convs))
        return GateScores(1.0 - rate, rate, len(convs), {"identical": len(convs) - len(asked),
                                                          "unreadable_verdicts": unreadable,
                                                          "judge": self.judge_model})


class RewardEvaluator:
    """Mean label-free reward (the TAO round's scorers) of each model's greedy answers on held-out prompts."""

    name = "reward"

    def __init__(self, prompts: list[Prompt], scorers: list[dict[str, Any]], *, db: str | None = None,
                 extract_mode: str = "none", max_new_tokens: int = 128, max_examples: int | None = None,
                 dtype: str = "auto", device: str = "auto"):
        from opentao.score.registry import build_scorers
        from opentao.score.stage import with_default_db

        if not prompts:
            raise TaoError("the reward gate needs held-out prompts: raise flywheel.holdout or log more traffic")
        self.prompts = prompts[:max_examples] if max_examples else prompts
        self.scorers = build_scorers(with_default_db(scorers, db))
        self.extract_mode, self.max_new_tokens, self.dtype, self.device = extract_mode, max_new_tokens, dtype, device

    def mean_reward(self, answers: list[str]) -> float:
        from opentao.generate.strategies import extract
        from opentao.records import Candidate
        from opentao.score.registry import score_group_all

        total = 0.0
        for p, text in zip(self.prompts, answers):
            response, answer = extract(text, "plain", self.extract_mode)
            cand = Candidate(p.prompt_id, f"{p.prompt_id}#gate", "plain", p.messages, text, response, answer)
            total += score_group_all(self.scorers, p, [cand])[1][0] or 0.0
        return total / len(self.prompts)

    def compare(self, current: str, candidate: str) -> GateScores:
        convs = [p.messages for p in self.prompts]
        kw = dict(max_new_tokens=self.max_new_tokens, dtype=self.dtype, device=self.device)
        return GateScores(self.mean_reward(greedy_answers(current, convs, **kw)),
                          self.mean_reward(greedy_answers(candidate, convs, **kw)), len(convs))


def build_evaluator(gate: dict[str, Any], heldout: list[Prompt], *, run_cfg=None, dtype: str = "auto",
                    device: str = "auto") -> GateEvaluator:
    """The gate's evaluator; ``run_cfg`` (the round's RunConfig) supplies the scorers of the ``reward`` gate."""
    kind = gate.get("kind", "judge")
    common = dict(dtype=dtype, device=device)
    if kind == "reward":
        if run_cfg is None:
            raise TaoError("the reward gate needs the round's scorers")
        return RewardEvaluator(heldout, run_cfg.score.scorers, db=run_cfg.db, extract_mode=run_cfg.generate.extract,
                               max_new_tokens=gate.get("max_new_tokens", 128), max_examples=gate.get("max_examples"),
                               **common)
    if kind == "judge":
        return PairwiseJudgeEvaluator(heldout, gate.get("judge_model") or "bundled",
                                      max_new_tokens=gate.get("max_new_tokens", 128),
                                      max_examples=gate.get("max_examples"), **common)
    if kind in ("exact", "sql") and not gate.get("data"):
        raise TaoError(f"gate.kind {kind!r} needs a labeled dev set: set gate.data")
    if kind == "exact":
        return ExactMatchEvaluator(gate["data"], match=gate.get("match", "exact"),
                                   max_examples=gate.get("max_examples"),
                                   max_new_tokens=gate.get("max_new_tokens", 64), **common)
    if kind == "sql":
        if not gate.get("db"):
            raise TaoError("gate.kind 'sql' needs gate.db (the SQLite database of the dev set)")
        return SqlDevSetEvaluator(gate["data"], gate["db"], max_examples=gate.get("max_examples"),
                                  max_new_tokens=gate.get("max_new_tokens", 128), stop=tuple(gate.get("stop", ())),
                                  **common)
    if ":" in kind:
        from opentao.score.base import import_object

        return import_object(kind)(gate, heldout)
    raise TaoError(f"unknown gate.kind {kind!r}: use judge, reward, exact, sql or 'package.module:attr'")
