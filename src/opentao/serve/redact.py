"""Optional PII redaction of logged text (``--redact-pii``): emails, phone numbers, payment card numbers.

Applied to the messages and responses *before* the row is written, so the raw text never reaches the inference
table (or the prompts a flywheel round trains on). The client still gets the unredacted response.

Simplifications: regular expressions, not an NER model. Card numbers are 13-19 digits (spaces or dashes allowed)
that pass the Luhn check, so most order numbers are left alone; phone numbers are 9-15 digits with an optional
``+`` country code and common separators. Names and street addresses are not detected.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\w)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match) -> str:
    digits = re.sub(r"\D", "", m.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and luhn_ok(digits) else m.group()


def _phone(m: re.Match) -> str:
    digits = re.sub(r"\D", "", m.group())
    return "[PHONE]" if 9 <= len(digits) <= 15 else m.group()


def redact(text: str) -> str:
    text = EMAIL.sub("[EMAIL]", text)
    text = CARD.sub(_card, text)
    return PHONE.sub(_phone, text)


def redact_messages(messages: list[dict]) -> list[dict]:
    return [{**m, "content": redact(m["content"])} if isinstance(m.get("content"), str) else m for m in messages]
