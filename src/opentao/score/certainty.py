"""Label-free rewards from the policy's own token distribution: no verifier, no judge, no vote needed.

* ``self_certainty`` (Intuitor: Zhao et al. 2025, "Learning to Reason without External Rewards"; Kang et al.
  2025): the mean over response tokens of ``KL(U || p_t) = -log V - (1/V) * sum_j log p_t(j)``, where ``p_t`` is
  the model's next-token distribution at response position t and V the vocabulary size. 0 for a uniform
  distribution, larger the more peaked: higher = more certain.
* ``entropy``: minus the mean token entropy ``H(p_t) = -sum_j p_t(j) log p_t(j)`` (so higher = better, like every
  scorer); 0 is a model that is sure of every token, ``-log V`` a uniform one.

Both score a candidate's ``response`` under the **plain** prompt (what the model is trained to answer) by one
forward pass of the round's policy — the model that sampled the round, which the score stage fills in as
``model`` when the spec names none (:func:`opentao.score.stage.with_round_model`). The model is loaded on first
use. A candidate with an empty response, or one whose prompt leaves no room under ``max_length``, is abstained on
(None). Scores are computed at temperature 1 in fp32 from the logits.
"""

from __future__ import annotations

import math
import threading

import torch

from opentao.errors import TaoError
from opentao.records import Candidate, Prompt
from opentao.tokens import completion_logits, encode_pair, pad_batch

__all__ = ["TokenDistributionScorer", "entropy_scorer", "self_certainty_scorer", "token_stats"]

_KINDS = ("self_certainty", "entropy")


def token_stats(logits: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sequence masked means over tokens: ``self_certainty`` and ``entropy`` (both (B,)).

    ``logits``: (B, C, V); ``mask``: (B, C), 1 on response tokens.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, C, V)
    V = logits.size(-1)
    certainty = -logp.mean(-1) - math.log(V)  # (B, C): KL(U || p_t)
    entropy = -(logp.exp() * logp).sum(-1)  # (B, C): H(p_t)
    n = mask.sum(-1).clamp(min=1.0)
    return {"self_certainty": (certainty * mask).sum(-1) / n, "entropy": (entropy * mask).sum(-1) / n}


class TokenDistributionScorer:
    """``kind="self_certainty"`` or ``"entropy"`` (module doc) under ``model`` (a folder or ``bundled``)."""

    def __init__(self, kind: str, model: str | None = None, name: str | None = None, batch_size: int = 8,
                 max_length: int = 1024, dtype: str = "auto", device: str = "auto") -> None:
        if kind not in _KINDS:
            raise TaoError(f"unknown token-distribution scorer {kind!r}; use {' or '.join(_KINDS)}")
        if not model or not isinstance(model, str):
            raise TaoError(f"scorer {kind!r} needs 'model' (the score stage fills in the round's model)")
        if batch_size < 1 or max_length < 2:
            raise TaoError(f"scorer {kind!r}: batch_size must be >= 1 and max_length >= 2")
        self.kind = kind
        self.model_name = model
        self.name = name or kind
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.dtype, self.device = dtype, device
        self._model = self._tok = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from opentao.models import load_model, resolve_model

                self._model, self._tok = load_model(resolve_model(self.model_name), dtype=self.dtype,
                                                    device=self.device)
                self._model.eval()
        return self._model, self._tok

    @torch.no_grad()
    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        model, tok = self._load()
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        pairs = {i: encode_pair(tok, prompt.messages, c.response, self.max_length)
                 for i, c in enumerate(candidates) if (c.response or "").strip()}
        todo = [(i, p) for i, p in pairs.items() if p is not None]
        scores: list[float | None] = [None] * len(candidates)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            batch = pad_batch([p for _, p in chunk], pad_id, model.device)
            stats = token_stats(completion_logits(model, batch), batch["completion_mask"])[self.kind]  # (B,)
            for (i, _), v in zip(chunk, stats.tolist()):
                scores[i] = v if self.kind == "self_certainty" else -v
        return scores

    def __repr__(self) -> str:
        return f"TokenDistributionScorer(kind={self.kind!r}, model={self.model_name!r}, name={self.name!r})"


def self_certainty_scorer(model: str | None = None, name: str = "self_certainty", batch_size: int = 8,
                          max_length: int = 1024, dtype: str = "auto", device: str = "auto") -> TokenDistributionScorer:
    """Registry factory for ``type: self_certainty``."""
    return TokenDistributionScorer("self_certainty", model, name, batch_size, max_length, dtype, device)


def entropy_scorer(model: str | None = None, name: str = "entropy", batch_size: int = 8, max_length: int = 1024,
                   dtype: str = "auto", device: str = "auto") -> TokenDistributionScorer:
    """Registry factory for ``type: entropy``."""
    return TokenDistributionScorer("entropy", model, name, batch_size, max_length, dtype, device)
