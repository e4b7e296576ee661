"""Generator backends: the extension point that turns chat prompts into sampled texts.

``HFGenerator`` runs batched ``transformers`` generation (on a GPU when present; dtype ``auto``: bf16 where the hardware multiplies it natively, else fp32). Users can
plug in another backend (vLLM, an HTTP endpoint) with ``"package.module:attr"``: any object with a
``generate(requests) -> outputs`` method as in the ``Generator`` protocol (:mod:`opentao.generate.backend`, which
also holds ``GenRequest``, ``GenOutput`` and ``TokenLogprob``).

**Log-probabilities.** A request with ``top_logprobs=k`` (0 ≤ k) gets, for every generated token, its
log-probability and the ``k`` most likely tokens at that position (:class:`TokenLogprob`). They come from the
model's log-softmax over the *raw* next-token logits — temperature 1, before temperature, top-p or any other
logits processor — so they describe the model, not the sampler (the OpenAI API reports the same). A sampled
token may therefore be outside the top k. ``next_token_logprobs`` gives the next-token distribution after a
prompt with one forward pass (what a yes/no judge needs), without generating.
"""

from __future__ import annotations

import threading

import torch

from opentao.generate.backend import GenOutput, GenRequest, TokenLogprob
from opentao.records import Message

LOGPROB_MEMORY_BYTES = 512 * 2**20  # raw logits kept per generate() call when logprobs are asked for


def stop_token_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    for tok in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (Radford et al. 2019), inverted: printable character → byte."""
    keep = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


class TokenText:
    """Token id → (text, UTF-8 bytes). Byte-level BPE tokens (``Ġthe``) map to their exact bytes, so a token
    holding half of a UTF-8 character has its true bytes (its text shows U+FFFD); other tokenizers decode."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        probe = tokenizer.convert_ids_to_tokens(tokenizer.encode(" a", add_special_tokens=False))
        self.decoder = _byte_decoder() if any(str(p).startswith("Ġ") for p in probe) else None
        self._cache: dict[int, tuple[str, tuple[int, ...]]] = {}

    def __call__(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        hit = self._cache.get(token_id)
        if hit is None:
            piece = self.tok.convert_ids_to_tokens(token_id)
            if self.decoder is not None and isinstance(piece, str) and piece and all(c in self.decoder for c in piece):
                raw = bytes(self.decoder[c] for c in piece)
            else:
                raw = self.tok.decode([token_id]).encode("utf-8")
            hit = self._cache[token_id] = (raw.decode("utf-8", errors="replace"), tuple(raw))
        return hit

    def entry(self, token_id: int, logprob: float, top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
        text, raw = self(token_id)
        return TokenLogprob(text, raw, float(logprob), top)


class HFGenerator:
    """Batched sampling with a loaded HF causal LM.

    Requests are grouped by temperature (one ``generate`` call has one) and chunked into ``batch_size``
    sequences, left-padded; each row has its own stop strings (``opentao.generate.stopping.StopMatcher``).
    ``interrupt()`` (from another thread) ends the running call within one decoding step. Each chunk is seeded
    from its first request's seed, so the same request list gives the same texts (on the same hardware) — which
    makes resumed runs reproducible.
    Requests asking for logprobs are batched apart, in chunks small enough that the raw logits they keep
    stay under ``LOGPROB_MEMORY_BYTES``.
    """

    supports_logprobs = True

    def __init__(self, model, tokenizer, *, batch_size: int = 32, top_p: float = 0.95):
        self.model = model
        self.tok = tokenizer
        self.tok.padding_side = "left"
        self.batch_size = batch_size
        self.top_p = top_p
        self.stop_ids = stop_token_ids(tokenizer)
        self.token_text = TokenText(tokenizer)
        self._interrupted = threading.Event()

    def interrupt(self) -> None:
        """End the running ``generate`` call at its next decoding step (its outputs are then cut short)."""
        self._interrupted.set()

    def render(self, messages: list[Message]) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def _generate_chunk(self, chunk: list[GenRequest]) -> list[GenOutput]:
        from transformers import StoppingCriteriaList

        from opentao.generate.stopping import StopMatcher

        texts = [self.render(r.messages) for r in chunk]
        unique = list(dict.fromkeys(texts))
        enc = self.tok(unique, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        rows = torch.tensor([unique.index(t) for t in texts], device=self.model.device)  # (B,) → unique prompt
        input_ids, mask = enc["input_ids"][rows], enc["attention_mask"][rows]  # (B, T)
        temp = chunk[0].temperature
        torch.manual_seed(chunk[0].seed)
        kwargs = dict(do_sample=True, temperature=temp, top_p=self.top_p) if temp > 0 else dict(do_sample=False)
        matcher = StopMatcher(self.tok, [r.stop for r in chunk], input_ids.shape[1], self._interrupted.is_set)
        want_logprobs = chunk[0].top_logprobs is not None
        if want_logprobs:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
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
            stopping_criteria=StoppingCriteriaList([matcher]),
            **kwargs,
        )
        sequences = out.sequences if want_logprobs else out
        new = sequences[:, input_ids.shape[1] :]  # (B, T_new)
        kept: list[list[int]] = []
        for row, req, stopped in zip(new.tolist(), chunk, matcher.stopped_at):
            ids = row[: min(req.max_new_tokens, stopped or req.max_new_tokens)]  # the chunk ran to its longest budget
            n = next((j for j, t in enumerate(ids) if t in self.stop_ids), len(ids))
            kept.append(ids[:n])
        logprobs = self._logprobs(out.logits, kept, chunk) if want_logprobs else [None] * len(chunk)
        return [GenOutput(self.tok.decode(ids, skip_special_tokens=True), len(ids), lp)
                for ids, lp in zip(kept, logprobs)]

    def _logprobs(self, logits: tuple[torch.Tensor, ...], kept: list[list[int]],
                  chunk: list[GenRequest]) -> list[tuple[TokenLogprob, ...]]:
        """Per row, per kept token: its logprob and the row's top k, from the raw logits of each step.

        ``logits[t]`` is (B, V): the unprocessed float32 logits that chose the ``t``-th new token of each row."""
        k = max(r.top_logprobs or 0 for r in chunk)
        rows: list[list[TokenLogprob]] = [[] for _ in chunk]
        for t, step in enumerate(logits[: max(map(len, kept), default=0)]):
            live = [b for b, ids in enumerate(kept) if t < len(ids)]
            lp = torch.log_softmax(step[live].float(), dim=-1)  # (L, V)
            chosen_ids = torch.tensor([[kept[b][t]] for b in live], device=lp.device)
            chosen = lp.gather(1, chosen_ids).squeeze(1).tolist()  # (L,)
            top_v, top_i = lp.topk(min(k, lp.shape[-1]), dim=-1) if k else (lp[:, :0], lp[:, :0].long())
            for j, b in enumerate(live):
                kb = chunk[b].top_logprobs or 0
                top = tuple(self.token_text.entry(i, v) for i, v in zip(top_i[j, :kb].tolist(), top_v[j, :kb].tolist()))
                rows[b].append(self.token_text.entry(kept[b][t], chosen[j], top))
        return [tuple(r) for r in rows]

    @torch.inference_mode()
    def next_token_logprobs(self, requests: list[GenRequest], top_k: int) -> list[list[tuple[str, float]]]:
        """The ``top_k`` most likely next tokens after each chat-templated prompt, as ``(text, logprob)`` pairs,
        most likely first: one forward pass per ``batch_size`` prompts, log-softmax of the last position."""
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(requests), self.batch_size):
            texts = [self.render(r.messages) for r in requests[start : start + self.batch_size]]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding: count real tokens
            logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                position_ids=positions, logits_to_keep=1).logits[:, -1]  # (B, V)
            lp = torch.log_softmax(logits.float(), dim=-1)
            values, ids = lp.topk(max(1, min(top_k, lp.shape[-1])), dim=-1)
            for row_v, row_i in zip(values.tolist(), ids.tolist()):
                out.append([(self.token_text(i)[0], v) for i, v in zip(row_i, row_v)])
        return out

    def generate(self, requests: list[GenRequest]) -> list[GenOutput]:
        outputs: list[GenOutput | None] = [None] * len(requests)
        self._interrupted.clear()
        by_temp: dict[tuple[float, bool], list[int]] = {}
        for i, r in enumerate(requests):
            by_temp.setdefault((r.temperature, r.top_logprobs is not None), []).append(i)
        for (_, logprobs), idxs in by_temp.items():
            size = self.batch_size
            if logprobs:  # generate() keeps (rows × new tokens × vocabulary) float32 logits
                vocab = max(len(self.tok), getattr(self.model.config, "vocab_size", 0) or 0)
                per_row = max(requests[i].max_new_tokens for i in idxs) * vocab * 4
                size = max(1, min(size, LOGPROB_MEMORY_BYTES // per_row))
            for start in range(0, len(idxs), size):
                part = idxs[start : start + size]
                for i, o in zip(part, self._generate_chunk([requests[i] for i in part])):
                    outputs[i] = o
        return outputs  # type: ignore[return-value]
