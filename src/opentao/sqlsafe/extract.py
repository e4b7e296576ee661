"""Pull one SQL statement out of a model response (fenced blocks, keyword scan, statement cut).

Extraction never executes anything; the text it returns is still untrusted and goes through
:func:`opentao.sqlsafe.readonly.run_sql_readonly`.
"""

from __future__ import annotations

import re

import sqlglot

from opentao.sqlsafe.readonly import _is_query

__all__ = ["extract_sql"]

# --------------------------------------------------------------------------------------------- extraction

_FENCE_RE = re.compile(r"```(.*?)(?:```|\Z)", re.DOTALL)
_SQL_LANGS = {"sql", "sqlite", "sqlite3"}
_KEYWORD_RE = re.compile(
    r"\bSELECT\b|\bWITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^()]*\)\s*)?AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\(",
    re.IGNORECASE,
)
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")


def _cut_statement(text: str) -> str:
    """Text up to the first ``;`` that is outside quotes and comments (the ``;`` itself dropped)."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = text.find(close, i + 1)
            while j != -1 and close != "]" and j + 1 < n and text[j + 1] == close:  # doubled quote escape
                j = text.find(close, j + 2)
            if j == -1:
                return text
            i = j + 1
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            if j == -1:
                return text
            i = j + 1
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j == -1:
                return text
            i = j + 2
            continue
        if ch == ";":
            return text[:i]
        i += 1
    return text


def _clean(sql: str) -> str:
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    return sql


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, content) of every ``` block; an unterminated last block runs to the end."""
    blocks = []
    for m in _FENCE_RE.finditer(text):
        body = m.group(1)
        first, nl, rest = body.partition("\n")
        tag = first.strip()
        if nl and (not tag or re.fullmatch(r"[\w+.-]+", tag)) and tag.upper() not in {"SELECT", "WITH"}:
            blocks.append((tag.lower(), rest))
        elif re.match(r"(?i)sql\s", body):
            blocks.append(("sql", body[3:]))
        else:
            blocks.append(("", body))
    return blocks


def _parses_as_query(sql: str) -> bool:
    try:
        trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except Exception:  # noqa: BLE001 - sqlglot raises several error types
        return False
    return len(trees) == 1 and _is_query(trees[0])


def extract_sql(text: str) -> str:
    """Pull one SQL statement out of a model response; "" when there is nothing SQL-like.

    Order: the first ```sql (or ```sqlite) fenced block; else the first ``` block whose content contains
    a query keyword; else the text from the first ``SELECT``/``WITH … AS (`` keyword (case-insensitive)
    to the first ``;`` or blank line or the end. Where several keyword positions exist, the first one that
    parses as a query wins (so prose like "Select the rows …" before the real query is skipped), falling
    back to the first one. The result is stripped and has no trailing ``;``.
    """
    if not text:
        return ""
    blocks = _fenced_blocks(text)
    ordered = [c for lang, c in blocks if lang in _SQL_LANGS] + [c for lang, c in blocks if lang not in _SQL_LANGS]
    for content in ordered:
        if _KEYWORD_RE.search(content):
            sql = _clean(_cut_statement(content))
            if sql:
                return sql
    candidates: list[str] = []
    for m in _KEYWORD_RE.finditer(text):
        rest = text[m.start():]
        blank = _BLANK_LINE_RE.search(rest)
        if blank:
            rest = rest[: blank.start()]
        sql = _clean(_cut_statement(rest).replace("```", ""))
        if sql and sql not in candidates:
            candidates.append(sql)
        if len(candidates) >= 8:
            break
    for sql in candidates:
        if _parses_as_query(sql):
            return sql
    return candidates[0] if candidates else ""
