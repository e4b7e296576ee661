"""Answer normalization and the gold metric of docqa: yes/no match for BoolQ, SQuAD-normalized exact match
(lowercase, no punctuation or articles; Rajpurkar et al. 2016) for spans."""

from __future__ import annotations

import re
import string

__all__ = ["GOLD_FIELDS", "answer_line", "grade", "grounded", "is_strict_yes_no", "squad_normalize", "yes_no"]

GOLD_FIELDS = ("kind", "answer")


def squad_normalize(text: str) -> str:
    """SQuAD answer normalization: lowercase, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in (text or "").lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_line(text: str) -> str:
    """The answer a response gives: its first non-empty line without an ``Answer:`` prefix or quotes."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^\**(final )?answer\**\s*[:：]\s*", "", line, flags=re.IGNORECASE)
            return line.strip().strip('"“”\'').strip()
    return ""


def yes_no(text: str) -> str | None:
    """'yes' / 'no' when the answer starts with yes/no (or true/false), else None."""
    m = re.match(r"\W*(yes|no|true|false)\b", answer_line(text), re.IGNORECASE)
    if not m:
        return None
    return "yes" if m.group(1).lower() in ("yes", "true") else "no"


def is_strict_yes_no(text: str) -> bool:
    return squad_normalize(answer_line(text)) in ("yes", "no") and len(text.strip().splitlines()) == 1


def grounded(answer: str, passage: str) -> bool:
    """The normalized answer occurs as a whole-token substring of the normalized passage."""
    a = squad_normalize(answer)
    return bool(a) and f" {a} " in f" {squad_normalize(passage)} "


def grade(row: dict, prediction: str) -> tuple[bool, str]:
    """Gold metric for one row ``{"kind": "yesno"|"span", "answer": str}``: (correct, reason when wrong)."""
    if row["kind"] == "yesno":
        got = yes_no(prediction)
        if got is None:
            return False, "no yes/no answer"
        return got == row["answer"], "" if got == row["answer"] else f"said {got}"
    ok = squad_normalize(answer_line(prediction)) == squad_normalize(row["answer"])
    return ok, "" if ok else "span mismatch"
