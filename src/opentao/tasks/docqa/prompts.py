"""Docqa prompts: a passage, a question and the answer-format instruction; parsed back by the scorer."""

from __future__ import annotations

import re

from opentao.records import Message

MAX_PASSAGE_WORDS = 120
MAX_SPAN_WORDS = 12
YESNO_INSTRUCTION = "Answer with yes or no only."
SPAN_INSTRUCTION = "Answer with a short phrase copied from the passage, nothing else."
_PROMPT_RE = re.compile(r"Passage:\n(?P<passage>.*)\n\nQuestion: (?P<question>.*)\n\n(?P<instruction>[^\n]*)\Z",
                        re.DOTALL)


def docqa_messages(passage: str, question: str, kind: str) -> list[Message]:
    instruction = YESNO_INSTRUCTION if kind == "yesno" else SPAN_INSTRUCTION
    text = f"Read the passage and answer the question.\n\nPassage:\n{passage}\n\nQuestion: {question}\n\n{instruction}"
    return [{"role": "user", "content": text}]


def parse_prompt(messages: list[Message]) -> tuple[str, str, str] | None:
    """(passage, question, kind) from a docqa prompt, or None when it is not one."""
    m = _PROMPT_RE.search(messages[-1]["content"]) if messages else None
    if not m:
        return None
    kind = "yesno" if m["instruction"] == YESNO_INSTRUCTION else "span"
    return m["passage"], m["question"], kind
