"""The data flywheel: logged traffic → a TAO round → a gated promotion of the served model.

One ``tao flywheel`` invocation is one round (cron-able; ``--every 6h`` loops):

1. **Export.** Rows of the inference table logged since the last round (``seq`` above the saved cut-off):
   200s only, optional key-id / metadata filters (``filter: {task: sql}`` matches the request's ``metadata``),
   conversations whose last turn is a user turn (multi-turn chats are first-class prompts: the last user turn
   is the one answered, the earlier turns are context), deduplicated by content, optionally sampled. A hashed
   share (``holdout``) is held out for the judge gate and never trained on. Fewer than ``min_prompts`` →
   nothing happens and the cut-off stays, so prompts accumulate until the next invocation.
2. **TAO round** with the existing pipeline (``run_rounds`` on a ``RunConfig`` whose ``prompts`` is the
   exported file and whose ``model`` is the currently served model) in ``rounds/round-N/run``.
3. **Gate.** :mod:`opentao.flywheel.gates` scores current vs candidate on one scale: a labeled dev set if given,
   else a pairwise judge (or the round's own label-free scorers, ``gate.kind: reward``) on the held-out
   prompts. Promote only if ``candidate - current >= margin`` *and* a one-sided paired sign test over the
   per-example scores puts the candidate ahead at ``gate.confidence`` (default 0.95: p <= 0.05).
4. **Decide.** A row in the ``decisions`` table (both scores, margin, the confidence level and the test's
   p-value, its wins/losses/ties in ``details.significance``, versions, promoted yes/no, reason);
   a promotion rewrites ``current.json``, which the running server picks up without dropping requests.

``tao rollback`` pops the pointer history (and records a decision row). State is ``flywheel.json`` (the
cut-off and the round counter), written after the decision: a round that crashes is resumed by re-running the
same command (its export is kept and the pipeline skips finished stages).

The package: :mod:`~opentao.flywheel.config` (the configs), :mod:`~opentao.flywheel.export` (logged rows →
prompts), :mod:`~opentao.flywheel.gates` (the evaluators, the gate, rollback), :mod:`~opentao.flywheel.decisions`
(the decisions table), :mod:`~opentao.flywheel.state` (``flywheel.json``), :mod:`~opentao.flywheel.round` (one
round). The names below are re-exported for users and tests.
"""

from opentao.flywheel.config import FlywheelConfig, GateConfig, load_flywheel_config, parse_duration
from opentao.flywheel.decisions import DECISION_SCHEMA, Decision, format_decision, read_decisions, record_decision
from opentao.flywheel.export import conversations_of, select_prompts, split_holdout
from opentao.flywheel.gates import GateEvaluator, GateScores, build_evaluator, confidence_test, gate, rollback
from opentao.flywheel.round import run_round
from opentao.flywheel.state import STATE_FILE, read_state, write_state
from opentao.serve.host import read_pointer, write_pointer

__all__ = [
    "DECISION_SCHEMA", "Decision", "STATE_FILE", "FlywheelConfig", "GateConfig", "GateEvaluator", "GateScores",
    "build_evaluator", "confidence_test", "conversations_of", "format_decision", "gate", "load_flywheel_config",
    "parse_duration", "read_decisions", "read_pointer", "read_state", "record_decision", "rollback", "run_round",
    "select_prompts", "split_holdout", "write_pointer", "write_state",
]
