"""Stop strings and interruption for one batched ``generate`` call, at a bounded cost per decoding step.

``StopMatcher`` is a transformers ``StoppingCriteria``. Each row has its own stop strings (so requests with
different stops share a batch). Nothing is precomputed from the stop strings — transformers'
``StopStringCriteria`` builds token tables whose cost grows with the strings' length, which is what let one
request with a long stop stall every other request on the generate thread. Instead each step decodes only the
newest tokens of a row incrementally (the detokenization that TGI and vLLM use: the text of a short window of
tokens minus the text of its prefix, held back while it ends in an incomplete UTF-8 character) and looks for
the stops in the last ``len(longest stop) - 1`` characters seen before plus the new text. The work per step is
a couple of decodes of a handful of tokens and one substring search over a window bounded by the longest stop
(which the gateway caps; see ``opentao.serve.schemas.MAX_STOP_CHARS``).

A row stops at the token that completes a stop string; the stop string is kept in the output, as with
``stop_strings``. ``stopped_at[b]`` is how many new tokens row ``b`` had then (None while it runs).

``should_abort`` (optional) is polled every step; when it returns True every row stops at once — how a server
shutting down ends a running batch within one decoding step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import StoppingCriteria


MAX_WINDOW_TOKENS = 16  # tokens that decode to nothing (special, partial bytes) cannot grow it


class StopMatcher(StoppingCriteria):
    def __init__(self, tokenizer, stops: Sequence[tuple[str, ...]], prompt_len: int,
                 should_abort: Callable[[], bool] | None = None):
        self.tok = tokenizer
        self.stops = [tuple(s for s in row if s) for row in stops]
        self.prompt_len = prompt_len
        self.should_abort = should_abort
        self.aborted = False
        rows = len(self.stops)
        self.stopped_at: list[int | None] = [None] * rows
        self._prefix = [0] * rows  # incremental detokenization offsets into the row's new tokens
        self._read = [0] * rows
        self._tail = [""] * rows  # the last (longest stop - 1) characters already checked
        self._keep = [max(map(len, row), default=1) - 1 for row in self.stops]

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def _new_text(self, b: int, row: torch.Tensor) -> str:
        """Text the newest tokens of row ``b`` added (empty while they end inside a UTF-8 character)."""
        prefix, read = self._prefix[b], self._read[b]
        window = row[self.prompt_len + prefix:].tolist()  # a few tokens: the prefix offset trails by ~1-2
        before = self._decode(window[: read - prefix])
        now = self._decode(window)
        if (len(now) > len(before) and not now.endswith("\ufffd")) or len(window) > MAX_WINDOW_TOKENS:
            self._prefix[b], self._read[b] = read, prefix + len(window)
            return now[len(before):]
        return ""

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.should_abort is not None and self.should_abort():
            self.aborted = True
            return torch.ones_like(done)
        n_new = input_ids.shape[1] - self.prompt_len
        for b, row_stops in enumerate(self.stops):
            if self.stopped_at[b] is not None:
                done[b] = True
                continue
            if not row_stops:
                continue
            delta = self._new_text(b, input_ids[b])
            if not delta:
                continue
            window = self._tail[b] + delta
            if any(s in window for s in row_stops):
                self.stopped_at[b] = n_new
                done[b] = True
                continue
            keep = self._keep[b]
            self._tail[b] = window[-keep:] if keep else ""
        return done
