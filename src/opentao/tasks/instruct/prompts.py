"""Instruct prompts: rendering a request with its constraints, and reading them back from the prompt alone."""

from __future__ import annotations

import re
from typing import Any

from opentao.records import Message
from opentao.tasks.instruct.constraints import CHECKERS, describe

_SOURCE_RE = re.compile(r"(?:Article:\n(?P<doc>.*?)\n\n|Question: (?P<question>[^\n]*)\n\n)", re.DOTALL)
_CONSTRAINTS_MARK = "Requirements:\n"


def parse_prompt(messages: list[Message]) -> tuple[str, str, list[dict]] | None:
    """(source kind, source text, constraints) of an instruct prompt, read back from the prompt text alone."""
    text = messages[-1]["content"] if messages else ""
    m = _SOURCE_RE.search(text)
    if not m or _CONSTRAINTS_MARK not in text:
        return None
    lines = [ln.removeprefix("- ") for ln in text.split(_CONSTRAINTS_MARK, 1)[1].split("\n- ")]
    constraints = [c for c in (constraint_from_text(ln) for ln in lines) if c is not None]
    if m["doc"] is not None:
        return "xsum", m["doc"], constraints
    return "nq", m["question"], constraints


def constraint_from_text(line: str) -> dict | None:
    """Invert :func:`describe` (the scorer sees only the prompt)."""
    for kind in CHECKERS:
        probe = {"type": kind, **_PROBE_ARGS.get(kind, {})}
        pattern = re.escape(describe(probe))
        for arg, value in _PROBE_ARGS.get(kind, {}).items():
            pattern = pattern.replace(re.escape(str(value)), f"(?P<{arg}>.+?)")
        m = re.fullmatch(pattern, line.strip(), re.DOTALL)
        if m:
            args = {k: (int(v) if k == "n" else v) for k, v in m.groupdict().items()}
            return {"type": kind, **args}
    return None


_PROBE_ARGS: dict[str, dict[str, Any]] = {"end_phrase": {"phrase": "PHRASE"}, "bullets": {"n": 987},
                                          "include_keyword": {"word": "WORD"}, "word_limit": {"n": 987},
                                          "exclude_keyword": {"word": "WORD"}}


def instruct_messages(source_kind: str, source: str, constraints: list[dict]) -> list[Message]:
    if source_kind == "xsum":
        head = f"Summarize the following news article in two or three sentences.\n\nArticle:\n{source}\n\n"
    else:
        head = f"Answer the question and explain briefly.\n\nQuestion: {source}\n\n"
    body = _CONSTRAINTS_MARK + "\n".join(f"- {describe(c)}" for c in constraints)
    return [{"role": "user", "content": head + body}]
