"""Export: logged inference rows → the round's training prompts and its held-out prompts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from opentao.data import ROLES, prompt_id_of
from opentao.flywheel.config import FlywheelConfig
from opentao.records import Message, Prompt
from opentao.store import atomic_write_text


def conversations_of(row: dict[str, Any]) -> list[list[Message]]:
    """The answerable conversations of a logged row (a completions request may carry several prompts)."""
    try:
        msgs = json.loads(row["messages"]) if isinstance(row["messages"], str) else row["messages"]
    except ValueError:
        return []
    convs = msgs if msgs and isinstance(msgs[0], list) else [msgs]
    good = []
    for conv in convs:
        if (conv and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                         for m in conv)
                and conv[-1]["role"] == "user" and conv[-1]["content"].strip()):
            good.append([{"role": m["role"], "content": m["content"]} for m in conv])
    return good


def select_prompts(rows: list[dict[str, Any]], cfg: FlywheelConfig, round_: int) -> tuple[list[Prompt], dict]:
    stats = {"rows": len(rows), "failed": 0, "filtered": 0, "duplicates": 0, "unanswerable": 0}
    prompts: dict[str, Prompt] = {}
    for row in rows:
        if row["status"] != 200:
            stats["failed"] += 1
            continue
        meta = json.loads(row["metadata"] or "{}").get("metadata", {}) if row.get("metadata") else {}
        if (cfg.key_ids and row["key_id"] not in cfg.key_ids) or any(meta.get(k) != v for k, v in cfg.filter.items()):
            stats["filtered"] += 1
            continue
        convs = conversations_of(row)
        stats["unanswerable"] += not convs
        for conv in convs:
            pid = prompt_id_of(conv)
            if pid in prompts:
                stats["duplicates"] += 1
            else:
                prompts[pid] = Prompt(pid, conv, round=1, meta={"request_id": row["request_id"]})
    chosen = list(prompts.values())
    rng = random.Random(cfg.seed * 1_000_003 + round_)
    if cfg.sample < 1.0:
        chosen = rng.sample(chosen, round(len(chosen) * cfg.sample))
    if cfg.max_prompts and len(chosen) > cfg.max_prompts:
        chosen = rng.sample(chosen, cfg.max_prompts)
    stats["selected"] = len(chosen)
    return chosen, stats


def split_holdout(prompts: list[Prompt], share: float) -> tuple[list[Prompt], list[Prompt]]:
    """Deterministic by prompt id, so a prompt is held out in every round it appears in."""
    held = [p for p in prompts if share > 0 and int(p.prompt_id[:8], 16) / 0xFFFFFFFF < share]
    if share > 0 and not held and len(prompts) > 1:
        held = [max(prompts, key=lambda p: p.prompt_id)]
    ids = {p.prompt_id for p in held}
    return [p for p in prompts if p.prompt_id not in ids], held


def write_prompts(path: Path, prompts: list[Prompt]) -> None:
    """The prompts as JSONL (``id`` + ``messages``), written atomically."""
    text = "".join(json.dumps({"id": p.prompt_id, "messages": p.messages}, ensure_ascii=False) + "\n"
                   for p in prompts)
    atomic_write_text(path, text)


def read_prompts(path: Path) -> list[Prompt]:
    """The prompts of a file :func:`write_prompts` wrote (none for a missing or empty file)."""
    if not path.is_file() or not path.read_text().strip():
        return []
    from opentao.data import load_prompts

    return load_prompts(path, round_=1)
