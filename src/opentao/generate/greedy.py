"""Greedy answers to a list of conversations: the one decoding loop of held-out evaluation and the gates.

Every greedy evaluation (``tao eval``, the pipeline's eval stage, the flywheel's gates) answers through
:func:`greedy_answers`, so one model given the same conversations, budget, stops and batch size answers the
same everywhere: the conversations are cut into consecutive batches of ``batch_size`` in their given order and
each batch is one ``generate`` call (for :class:`~opentao.generate.hf.HFGenerator`, one padded forward batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentao.records import Message

if TYPE_CHECKING:
    from opentao.generate.backend import Generator, GenOutput

__all__ = ["greedy_answers"]


def greedy_answers(model: str | Generator, conversations: Sequence[list[Message]], *, max_new_tokens: int,
                   stop: Sequence[str] = (), batch_size: int = 32, progress: str | None = None,
                   dtype: str = "auto", device: str = "auto") -> list[GenOutput]:
    """One greedy (temperature 0) output per conversation, in order.

    ``model`` is a model name or folder (loaded with :func:`opentao.models.load_model` and run by an
    ``HFGenerator`` of ``batch_size``; ``dtype``/``device`` apply) or any :class:`~opentao.generate.backend.Generator`.
    ``progress``: the label of a progress bar counting answers and tokens/s (none when ``None``).
    """
    from opentao.generate.backend import GenRequest

    if isinstance(model, str):
        from opentao.generate.hf import HFGenerator
        from opentao.models import load_model

        lm, tok = load_model(model, dtype=dtype, device=device)
        generator: Generator = HFGenerator(lm, tok, batch_size=batch_size)
    else:
        generator = model
    requests = [GenRequest(c, 0.0, max_new_tokens, stop=tuple(stop)) for c in conversations]
    batches = [requests[start : start + batch_size] for start in range(0, len(requests), batch_size)]
    outputs: list[GenOutput] = []
    if progress is None:
        for batch in batches:
            outputs.extend(generator.generate(batch))
        return outputs
    from opentao.progress import progress_bar

    with progress_bar(progress, total=len(requests), unit="answers", rates=("tokens",), every_s=0) as advance:
        for batch in batches:
            got = generator.generate(batch)
            outputs.extend(got)
            advance(len(got), tokens=sum(o.num_tokens for o in got))
    return outputs
