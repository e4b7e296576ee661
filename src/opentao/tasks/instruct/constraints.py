"""The verifiable constraints of the instruct task: their types, checkers, wording, and the relevance guard.

Everything here reads only a response and the constraints stated in its prompt (no labels), so both the
label-free :class:`~opentao.tasks.instruct.scorer.ConstraintScorer` and the gold
:func:`~opentao.tasks.instruct.grade.grade` use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from opentao.errors import TaoError
from opentao.text import PROSE_STOPWORDS as STOPWORDS  # noqa: F401  (re-exported: the task's data build uses it)
from opentao.text import content_words, words_of

MIN_WORDS = 3
TRAIN_TYPES = ("lowercase", "no_commas", "end_phrase", "json", "bullets", "include_keyword", "word_limit")
HELD_OUT_TYPES = ("title", "exclude_keyword", "quotation")
END_PHRASES = ("Is there anything else I can help with?", "Hope this helps.", "Let me know if you have questions.")
# pairs that cannot hold together (or make a checker ambiguous)
CONFLICTS = {
    frozenset(p) for p in [
        ("json", "bullets"), ("json", "title"), ("json", "end_phrase"), ("json", "quotation"),
        ("lowercase", "end_phrase"), ("quotation", "end_phrase"), ("quotation", "bullets"), ("quotation", "title"),
        ("include_keyword", "exclude_keyword"),
    ]
}

# ------------------------------------------------------------------------------------------- checkers


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text or "", re.IGNORECASE) is not None


def _strip_fence(text: str) -> str:
    m = re.match(r"^```[\w-]*\s*\n?(.*?)\n?```$", text.strip(), re.DOTALL)
    return (m.group(1) if m else text).strip()


def _json_value(text: str) -> Any:
    try:
        return json.loads(_strip_fence(text))
    except ValueError:
        return None


def check_lowercase(text: str, **_: Any) -> bool:
    return any(ch.isalpha() for ch in text) and text == text.lower()


def check_no_commas(text: str, **_: Any) -> bool:
    return bool(text.strip()) and "," not in text and "，" not in text


def check_end_phrase(text: str, phrase: str, **_: Any) -> bool:
    return text.strip().endswith(phrase)


def check_json(text: str, **_: Any) -> bool:
    return isinstance(_json_value(text), (dict, list)) and bool(_json_value(text))


def bullet_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"^\s*[*-]\s+\S", ln)]


def check_bullets(text: str, n: int, **_: Any) -> bool:
    return len(bullet_lines(text)) == n


def check_include_keyword(text: str, word: str, **_: Any) -> bool:
    return _has_word(text, word)


def check_word_limit(text: str, n: int, **_: Any) -> bool:
    return 0 < len(words_of(text)) < n


def check_title(text: str, **_: Any) -> bool:
    return re.search(r"<<[^<>\n]*[A-Za-z0-9][^<>\n]*>>", text) is not None


def check_exclude_keyword(text: str, word: str, **_: Any) -> bool:
    return bool(text.strip()) and not _has_word(text, word)


def check_quotation(text: str, **_: Any) -> bool:
    t = text.strip()
    return len(t) > 2 and t[0] == '"' and t[-1] == '"'


CHECKERS: dict[str, Callable[..., bool]] = {
    "lowercase": check_lowercase, "no_commas": check_no_commas, "end_phrase": check_end_phrase,
    "json": check_json, "bullets": check_bullets, "include_keyword": check_include_keyword,
    "word_limit": check_word_limit, "title": check_title, "exclude_keyword": check_exclude_keyword,
    "quotation": check_quotation,
}
DESCRIBE: dict[str, Callable[..., str]] = {
    "lowercase": lambda **_: "Your entire response must be in lowercase letters; no capital letters are allowed.",
    "no_commas": lambda **_: "Do not use any commas in your response.",
    "end_phrase": lambda phrase, **_: f'Finish your response with this exact phrase: "{phrase}". No other words '
                                      "should follow it.",
    "json": lambda **_: "Wrap your entire output in JSON format (a JSON object).",
    "bullets": lambda n, **_: f"Your answer must contain exactly {n} bullet points, using markdown bullets such as:"
                              "\n* This is a point.",
    "include_keyword": lambda word, **_: f'Include the keyword "{word}" in your response.',
    "word_limit": lambda n, **_: f"Answer with fewer than {n} words.",
    "title": lambda **_: "Your answer must contain a title, wrapped in double angular brackets, such as "
                         "<<poem of joy>>.",
    "exclude_keyword": lambda word, **_: f'Do not include the word "{word}" in your response.',
    "quotation": lambda **_: "Wrap your entire response with double quotation marks.",
}
assert set(CHECKERS) == set(DESCRIBE) == set(TRAIN_TYPES) | set(HELD_OUT_TYPES)


def check(constraint: dict, text: str) -> bool:
    """Does ``text`` satisfy one constraint ``{"type": ..., **args}``? Unknown type → TaoError."""
    kind = constraint.get("type")
    if kind not in CHECKERS:
        raise TaoError(f"unknown constraint type {kind!r}; known: {', '.join(CHECKERS)}")
    return bool(CHECKERS[kind](text or "", **{k: v for k, v in constraint.items() if k != "type"}))


def describe(constraint: dict) -> str:
    return DESCRIBE[constraint["type"]](**{k: v for k, v in constraint.items() if k != "type"})


# ------------------------------------------------------------------------------------------- relevance


def _plain_text(text: str) -> str:
    """The words of a response without JSON syntax (so a JSON answer is judged on its content)."""
    value = _json_value(text)
    if isinstance(value, (dict, list)):
        parts: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    parts.append(str(k))
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
            else:
                parts.append(str(v))

        walk(value)
        return " ".join(parts)
    return text


def dictated_words(constraints: list[dict]) -> set[str]:
    """Content words the constraints themselves put in a response (keywords, end phrases)."""
    out: set[str] = set()
    for c in constraints:
        for key in ("word", "phrase"):
            if key in c:
                out |= content_words(str(c[key]), rule="prose", min_len=4)
    return out


def relevant(text: str, source: str, constraints: list[dict], min_overlap: int) -> bool:
    """At least ``MIN_WORDS`` words and ``min_overlap`` content words shared with ``source`` (dictated words
    excluded) — the guard against degenerate passes such as a bare "ok"."""
    plain = _plain_text(text)
    if len(words_of(plain)) < MIN_WORDS:
        return False
    shared = ((content_words(plain, rule="prose", min_len=4) & content_words(source, rule="prose", min_len=4))
              - dictated_words(constraints))
    return len(shared) >= min_overlap


def min_overlap_for(source_kind: str) -> int:
    return 2 if source_kind == "xsum" else 1
