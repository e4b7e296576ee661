"""Reading unlabeled prompts (JSONL, CSV or Parquet) into ``Prompt`` records.

A file has either a ``prompt`` column (a string: one user turn) or a ``messages`` column (a chat: a list of
``{"role", "content"}``, multi-turn allowed; in CSV a JSON string). An ``id`` or ``prompt_id`` column is
used as the prompt id when present, else a content hash. Every other column (labels included) is ignored:
no TAO stage reads labels.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.records import Message, Prompt

MAX_PROMPT_CHARS = 100_000
ROLES = {"system", "user", "assistant"}


def read_table_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL / CSV / Parquet file as dicts, with one clear error for each way it can be bad."""
    p = Path(path)
    if not p.is_file():
        raise TaoError(f"prompt file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise TaoError(f"{p}: not a readable Parquet file ({exc})") from exc
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaoError(f"{p}: not valid UTF-8 (byte {exc.start})") from None
    if suffix in (".jsonl", ".json", ".ndjson"):
        return parse_jsonl(text, str(p))
    if suffix == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    raise TaoError(f"{p}: unsupported file type {suffix!r} (use .jsonl, .csv or .parquet)")


def parse_jsonl(text: str, where: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; TaoError naming ``where`` and the line otherwise."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaoError(f"{where}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TaoError(f"{where}:{lineno}: each line must be a JSON object")
        rows.append(row)
    return rows


def _messages_of(row: dict[str, Any], where: str) -> list[Message]:
    if "messages" in row and row["messages"] not in (None, ""):
        msgs = row["messages"]
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except json.JSONDecodeError:
                raise TaoError(f"{where}: 'messages' is not a JSON list of chat messages") from None
        if not isinstance(msgs, list) or not msgs:
            raise TaoError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
        out: list[Message] = []
        for m in msgs:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise TaoError(f"{where}: each message needs a role in {sorted(ROLES)} and a string content")
            out.append({"role": m["role"], "content": m["content"]})
        if out[-1]["role"] != "user":
            raise TaoError(f"{where}: the last message must be the user turn to answer")
        return out
    if "prompt" in row:
        text = row["prompt"]
        if not isinstance(text, str) or not text.strip():
            raise TaoError(f"{where}: 'prompt' must be a non-empty string")
        return [{"role": "user", "content": text}]
    raise TaoError(f"{where}: no 'prompt' or 'messages' column (found: {', '.join(sorted(row)) or 'none'})")


def checked_messages(row: dict[str, Any], where: str, max_chars: int = MAX_PROMPT_CHARS) -> list[Message]:
    """The row's conversation (``messages`` or ``prompt``), validated, at most ``max_chars`` characters of
    content in all; TaoError naming ``where`` otherwise."""
    messages = _messages_of(row, where)
    size = sum(len(m["content"]) for m in messages)
    if size > max_chars:
        raise TaoError(f"{where}: prompt has {size:,} characters, over the limit of {max_chars:,}")
    return messages


def prompt_id_of(messages: list[Message]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def load_prompts(path: str | Path, *, round_: int = 0, max_chars: int = MAX_PROMPT_CHARS) -> list[Prompt]:
    rows = read_table_rows(path)
    if not rows:
        raise TaoError(f"{path}: no prompts (the file is empty)")
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        where = f"{path}: row {i}"
        messages = checked_messages(row, where, max_chars)
        pid = row.get("prompt_id") or row.get("id")
        pid = str(pid) if pid not in (None, "") else prompt_id_of(messages)
        if pid in seen:
            raise TaoError(f"{where}: duplicate prompt id {pid!r}")
        seen.add(pid)
        prompts.append(Prompt(prompt_id=pid, messages=messages, round=round_))
    return prompts
