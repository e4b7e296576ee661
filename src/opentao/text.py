"""Text rules shared by the generator, the scorers, the tasks and the telemetry (pure; no model, no torch).

* :func:`normalize_answer` — the canonical form of a final answer. ``canonical=True`` (the default) is the
  *vote key*: what the majority vote, the consensus band, the telemetry and gold answer checks compare.
  ``canonical=False`` is the lighter form the generator stores as ``Candidate.answer``; the vote key of a stored
  answer equals the vote key of the raw text (``normalize_answer(normalize_answer(t, canonical=False)) ==
  normalize_answer(t)``), so storing the light form loses nothing a vote needs.
* :func:`content_words` — the words that make two texts "about the same thing", under one of two rules that
  each call site names: ``"identifiers"`` (prompts and queries: ``customer_id`` → customer, id; any script) or
  ``"prose"`` (English prose: ``don't``, ``well-known`` stay one word), with a minimum length.
* :func:`tally` and :func:`plurality` — counting votes for answer keys and finding the keys tied for the most
  votes. Every vote in the package (majority vote, docqa's grounded vote, the gold label accuracy, the consensus
  band, the telemetry's top share) counts with these, so ties and missing keys mean the same thing everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

__all__ = ["IDENTIFIER_STOPWORDS", "PROSE_STOPWORDS", "content_words", "normalize_answer", "plurality", "tally",
           "words_of"]

K = TypeVar("K", bound=Hashable)

# --- answers -------------------------------------------------------------------------------------------------
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACES_RE = re.compile(r"\s+")


def _canonical_number(text: str) -> str | None:
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER_RE.fullmatch(text):
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def normalize_answer(text: str | None, *, canonical: bool = True) -> str:
    """Canonical form of a final answer (``None`` → ``""``).

    Always: strip, lowercase, collapse whitespace runs to one space. Then

    * ``canonical=True`` (vote key): drop trailing ``.,;:!?`` and canonicalize a purely numeric answer
      (``"3.0"`` → ``"3"``, ``"1,000"`` → ``"1000"``, ``"0.50"`` → ``"0.5"``);
    * ``canonical=False`` (the stored ``Candidate.answer``): drop trailing ``.!;:`` only, numbers as written.
    """
    text = _SPACES_RE.sub(" ", (text or "").strip().lower())
    if not canonical:
        return text.rstrip(" .!;:")
    text = text.rstrip(" .,;:!?")
    num = _canonical_number(text)
    return num if num is not None else text


# --- content words -------------------------------------------------------------------------------------------
IDENTIFIER_STOPWORDS = frozenset("""a an and are as at be but by can could did do does for from had has have how i if
in into is it its me my no not of on or our shall should so than that the their them then there these they this
those to us was we were what when where which who whom why will with would you your please answer question give
show list find tell select sql query""".split())
"""Function words plus the words every question or query has (``select``, ``list``, ``answer``)."""

PROSE_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own said same says she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself also which been year years one two three new
""".split())
"""English function words plus words every news text has (``said``, ``year``, small numbers)."""

_IDENTIFIER_RE = re.compile(r"[^\W_]+", re.UNICODE)
_PROSE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_RULES = ("identifiers", "prose")


def words_of(text: str | None) -> list[str]:
    """The words of English prose as written: ASCII letters and digits, with inner apostrophes and hyphens."""
    return _PROSE_RE.findall(text or "")


def content_words(text: str, *, rule: str = "identifiers", min_len: int = 3) -> set[str]:
    """The lowercase content words of ``text`` with at least ``min_len`` characters, minus the rule's stopwords.

    * ``rule="identifiers"``: the text is lowercased, then split on everything that is not a letter or digit of
      any script (so ``customer_id`` → customer, id); :data:`IDENTIFIER_STOPWORDS` are dropped.
    * ``rule="prose"``: the words of :func:`words_of` whose length (as written) is at least ``min_len`` and whose
      lowercase form is not in :data:`PROSE_STOPWORDS`, lowercased, with edge apostrophes and hyphens trimmed.
    """
    if rule == "identifiers":
        return {w for w in _IDENTIFIER_RE.findall(text.lower())
                if len(w) >= min_len and w not in IDENTIFIER_STOPWORDS}
    if rule == "prose":
        return {w.lower().strip("'’-") for w in words_of(text)
                if len(w) >= min_len and w.lower() not in PROSE_STOPWORDS}
    raise ValueError(f"content_words: unknown rule {rule!r}; use one of {', '.join(_RULES)}")


# --- votes ---------------------------------------------------------------------------------------------------
def tally(keys: Iterable[K | None], weights: Iterable[float] | None = None) -> dict[K, float]:
    """Votes per key, ``None`` keys skipped, keys in order of first appearance.

    Without ``weights`` every key counts 1 (integer counts); with them each key adds its weight (float sums,
    added in order).
    """
    totals: dict[K, float] = {}
    if weights is None:
        for k in keys:
            if k is not None:
                totals[k] = totals.get(k, 0) + 1
        return totals
    for k, w in zip(keys, weights):
        if k is not None:
            totals[k] = totals.get(k, 0.0) + w
    return totals


def plurality(totals: Mapping[K, float]) -> list[K]:
    """The keys tied for the highest total, in the mapping's order (``[]`` when there is no key).

    A tie is not broken: every tied key is a plurality key, and a caller that needs a strict plurality checks
    ``len(plurality(totals)) == 1``.
    """
    if not totals:
        return []
    top = max(totals.values())
    return [k for k, v in totals.items() if v == top]
