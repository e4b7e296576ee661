"""(plain prompt, response) pairs as token tensors, for scoring a response under a model (GRPO, self-certainty).

The response is tokenized as the chat template renders the assistant turn after the generation prompt, so it ends
with the template's end-of-turn token as a sampled response did. Batches use TRL's GRPO layout: prompts
left-padded to P, completions right-padded to C, concatenated; ``position_ids`` count only real tokens, so left
padding does not shift positions.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["completion_logits", "encode_pair", "pad_batch"]

Message = dict[str, str]


def encode_pair(tok, messages: list[Message], response: str, max_length: int) -> tuple[list[int], list[int]] | None:
    """``(prompt ids, completion ids)`` with the completion cut to fit ``max_length``; None when nothing fits."""
    prompt_text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
    tail = full[len(prompt_text):] if full.startswith(prompt_text) else response + (tok.eos_token or "")
    p_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    c_ids = tok(tail, add_special_tokens=False)["input_ids"]
    room = max_length - len(p_ids)
    if room < 1 or not c_ids:
        return None
    return p_ids, c_ids[:room]


def pad_batch(pairs: list[tuple[list[int], list[int]]], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """``input_ids``/``attention_mask``/``position_ids`` (B, P + C) and ``completion_mask`` (B, C, float)."""
    P = max(len(p) for p, _ in pairs)
    C = max(len(c) for _, c in pairs)
    ids, attn, cmask = [], [], []
    for p, c in pairs:
        lp, lc = P - len(p), C - len(c)
        ids.append([pad_id] * lp + p + c + [pad_id] * lc)
        attn.append([0] * lp + [1] * (len(p) + len(c)) + [0] * lc)
        cmask.append([1] * len(c) + [0] * lc)
    attention_mask = torch.tensor(attn, device=device)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": attention_mask,
        "position_ids": (attention_mask.cumsum(-1) - 1).clamp(min=0),
        "completion_mask": torch.tensor(cmask, device=device, dtype=torch.float32),
    }


def completion_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """fp32 logits that predict each completion token, (B, C, V); the LM head runs on the last C + 1 positions."""
    C = batch["completion_mask"].size(1)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=C + 1).logits  # (B, C + 1, V)
    return logits[:, :-1, :].float()  # position t predicts completion token t
