"""Generator backends: the extension point that turns chat prompts into sampled texts.

``HFGenerator`` runs batched ``transformers`` generation (bf16 on CPU by default, GPU when present). Users can
plug in another backend (vLLM, an HTTP endpoint) with ``"package.module:attr"``: any object with a
``generate(requests) -> outputs`` method as in the ``Generator`` protocol below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from opentao.records import Message


@dataclass(frozen=True)
class GenRequest:
    messages: list[Message]
    temperature: float  # 0 → greedy
    max_new_tokens: int
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings (kept in the output), e.g. (";",) for one SQL statement


@dataclass(frozen=True)
class GenOutput:
    text: str
    num_tokens: int


@runtime_checkable
class Generator(Protocol):
    def generate(self, requests: list[GenRequest]) -> list[GenOutput]: ...


def stop_token_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    for tok in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


class HFGenerator:
    """Batched sampling with a loaded HF causal LM.

    Requests are grouped by temperature and stop strings (one ``generate`` call has one of each) and chunked into
    ``batch_size`` sequences, left-padded. Each chunk is seeded from its first request's seed, so the same
    request list gives the same texts (on the same hardware) — which makes resumed runs reproducible.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, top_p: float = 0.95):
        self.model = model
        self.tok = tokenizer
        self.tok.padding_side = "left"
        self.batch_size = batch_size
        self.top_p = top_p
        self.stop_ids = stop_token_ids(tokenizer)

    def render(self, messages: list[Message]) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def _generate_chunk(self, chunk: list[GenRequest]) -> list[GenOutput]:
        texts = [self.render(r.messages) for r in chunk]
        unique = list(dict.fromkeys(texts))
        enc = self.tok(unique, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        rows = torch.tensor([unique.index(t) for t in texts], device=self.model.device)  # (B,) → unique prompt
        input_ids, mask = enc["input_ids"][rows], enc["attention_mask"][rows]  # (B, T)
        temp = chunk[0].temperature
        torch.manual_seed(chunk[0].seed)
        kwargs = dict(do_sample=True, temperature=temp, top_p=self.top_p) if temp > 0 else dict(do_sample=False)
        if chunk[0].stop:
            kwargs.update(stop_strings=list(chunk[0].stop), tokenizer=self.tok)
        if len(unique) < len(texts):
            # The K samples of a prompt share the whole prompt: prefill each unique prompt once (all but its
            # last token), then copy its KV cache to every sample row; generate() prefills only the last token.
            u_ids, u_mask = enc["input_ids"][:, :-1], enc["attention_mask"][:, :-1]  # (U, T-1)
            positions = (u_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens only
            cache = self.model(input_ids=u_ids, attention_mask=u_mask, position_ids=positions,
                               use_cache=True).past_key_values
            cache.reorder_cache(rows)  # (U, H, T-1, D) → (B, H, T-1, D)
            kwargs["past_key_values"] = cache
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max(r.max_new_tokens for r in chunk),
            eos_token_id=self.stop_ids,
            pad_token_id=self.tok.pad_token_id,
            **kwargs,
        )
        new = out[:, input_ids.shape[1] :]  # (B, T_new)
        results = []
        for row, req in zip(new, chunk):
            ids = row.tolist()[: req.max_new_tokens]  # the chunk ran to its longest request's budget
            n = len(ids)
            for j, t in enumerate(ids):
                if t in self.stop_ids:
                    n = j
                    break
            results.append(GenOutput(self.tok.decode(ids[:n], skip_special_tokens=True), n))
        return results

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        outputs: list[GenOutput | None] = [None] * len(requests)
        by_temp: dict[tuple[float, tuple[str, ...]], list[int]] = {}
        for i, r in enumerate(requests):
            by_temp.setdefault((r.temperature, r.stop), []).append(i)
        for idxs in by_temp.values():
            for start in range(0, len(idxs), self.batch_size):
                part = idxs[start : start + self.batch_size]
                for i, o in zip(part, self._generate_chunk([requests[i] for i in part])):
                    outputs[i] = o
        return outputs  # type: ignore[return-value]
