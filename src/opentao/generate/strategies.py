"""Exploration strategies and answer extraction (pure functions, no model).

TAO spends test-time compute to *explore*: it samples K candidates per prompt under different strategies,
then trains the model to produce the best answer to the **plain** prompt directly. So each strategy maps the
plain prompt to the messages actually sampled from, and each sample maps back to
``(response to train on under the plain prompt, normalized answer for voting)``.

- ``plain``  : the prompt as is, sampled at the configured temperatures.
- ``cot``    : a chain-of-thought instruction is appended to the last user turn; only the final answer
               (after ``Final answer:``) becomes the training response, the reasoning is dropped.
- ``system`` : a system-prompt variant is put in front (replacing an existing system turn).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opentao.records import Message
from opentao.text import normalize_answer

COT_INSTRUCTION = (
    "\n\nThink step by step first. Then write the final answer on its own line, starting with 'Final answer:'."
)
_FINAL_RE = re.compile(r"final answer\s*[:：]\s*(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Slot:
    """One of the K sampling slots of a prompt."""

    index: int
    strategy: str
    temperature: float
    variant: int = 0  # which system prompt, for strategy "system"

    @property
    def label(self) -> str:
        return f"system:{self.variant}" if self.strategy == "system" else self.strategy


def plan_slots(k: int, strategies: list[str], temperatures: list[float], n_system: int) -> list[Slot]:
    """Spread K samples round-robin over strategies, temperatures and system-prompt variants.

    E.g. k=4, strategies=[plain, cot], temperatures=[0.7, 1.0] →
    plain@0.7, cot@0.7, plain@1.0, cot@1.0 — deterministic, so a resumed run samples the same plan.
    """
    slots = []
    for i in range(k):
        rnd = i // len(strategies)
        slots.append(Slot(i, strategies[i % len(strategies)], float(temperatures[rnd % len(temperatures)]),
                          rnd % max(n_system, 1)))
    return slots


def source_messages(messages: list[Message], slot: Slot, system_prompts: list[str]) -> list[Message]:
    """The messages actually sampled from for this slot."""
    msgs = [dict(m) for m in messages]
    if slot.strategy == "cot":
        msgs[-1] = {"role": msgs[-1]["role"], "content": msgs[-1]["content"] + COT_INSTRUCTION}
    elif slot.strategy == "system":
        if not system_prompts:
            raise ValueError("strategy 'system' needs at least one entry in generate.system_prompts")
        sys_msg = {"role": "system", "content": system_prompts[slot.variant % len(system_prompts)]}
        msgs = [sys_msg] + [m for m in msgs if m["role"] != "system"]
    return msgs


def final_answer(text: str) -> str:
    """The text after the last 'Final answer:' marker, or the last non-empty line."""
    matches = list(_FINAL_RE.finditer(text))
    if matches:
        return matches[-1].group(1).strip()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def extract(text: str, strategy: str, mode: str) -> tuple[str, str]:
    """Map a raw sample to (response to train on under the plain prompt, answer used for voting)."""
    if mode == "sql":
        from opentao.sqlsafe import extract_sql

        body = final_answer(text) if strategy == "cot" and _FINAL_RE.search(text) else text
        sql = extract_sql(body) or extract_sql(text)
        return (sql if sql else text.strip()), sql
    if mode == "final_answer":
        ans = final_answer(text)
        return (ans if strategy == "cot" else text.strip()), normalize_answer(ans, canonical=False)
    # mode "none": train on the text; a cot sample contributes only its final answer
    if strategy == "cot":
        ans = final_answer(text)
        return ans, normalize_answer(ans, canonical=False)
    return text.strip(), normalize_answer(text, canonical=False)
