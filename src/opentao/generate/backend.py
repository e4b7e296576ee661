"""The backend-neutral generation contract: what any generator takes and returns (torch-free).

A backend is any object with ``generate(requests: list[GenRequest]) -> list[GenOutput]`` (the
:class:`Generator` protocol), one output per request, in order. Built-ins: ``opentao.generate.hf.HFGenerator``
(local ``transformers`` model) and ``opentao.generate.openai_api.OpenAIBackend`` (an OpenAI-compatible
endpoint). This module imports neither, so code that only passes requests and outputs around (the gateway, the
judges, the OpenAI backend) does not load torch.

A request with ``top_logprobs=k`` asks for every generated token's log-probability and the ``k`` most likely
tokens at its position (:class:`TokenLogprob`), taken from the model's raw next-token distribution (before
temperature or top-p), as the OpenAI API reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from opentao.records import Message


@dataclass(frozen=True)
class GenRequest:
    messages: list[Message]
    temperature: float  # 0 → greedy
    max_new_tokens: int
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings (kept in the output), e.g. (";",) for one SQL statement
    top_logprobs: int | None = None  # None: no logprobs; k >= 0: each token's logprob and the k most likely


@dataclass(frozen=True)
class TokenLogprob:
    """One token as OpenAI's ``logprobs`` report it: its text, its UTF-8 bytes, its log-probability, and (for a
    generated token) the most likely tokens at its position, most likely first."""

    token: str
    token_bytes: tuple[int, ...]
    logprob: float
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class GenOutput:
    text: str
    num_tokens: int
    logprobs: tuple[TokenLogprob, ...] | None = None  # one per generated token, when the request asked


@runtime_checkable
class Generator(Protocol):
    def generate(self, requests: list[GenRequest]) -> list[GenOutput]: ...
