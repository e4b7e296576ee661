"""The TAO pipeline: the stage functions ``tao`` runs and the round loop that chains them.

* :mod:`~opentao.pipeline.rounds` — ``run_rounds`` (all rounds of a run) and the stage functions
  ``stage_generate`` / ``stage_score`` / ``stage_integrity`` / ``stage_train`` / ``stage_eval`` /
  ``stage_telemetry``, each ``(store, cfg, round_, ...)`` reading and writing the run directory;
* :mod:`~opentao.pipeline.validation` — ``validate``: check a config's inputs before anything is written;
* :mod:`~opentao.pipeline.format` — one-line renderings of stage results;
* :mod:`~opentao.pipeline.prepare` — the quickstart config.
"""

from opentao.pipeline.format import fmt_acc, fmt_change, fmt_means
from opentao.pipeline.prepare import quickstart_config
from opentao.pipeline.rounds import (
    keep_round,
    model_for_round,
    open_run,
    run_rounds,
    stage_eval,
    stage_generate,
    stage_integrity,
    stage_score,
    stage_telemetry,
    stage_train,
)
from opentao.pipeline.validation import round_prompts, validate

__all__ = [
    "fmt_acc", "fmt_change", "fmt_means", "keep_round", "model_for_round", "open_run",
    "quickstart_config", "round_prompts", "run_rounds", "stage_eval", "stage_generate",
    "stage_integrity", "stage_score", "stage_telemetry", "stage_train", "validate",
]
