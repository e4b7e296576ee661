"""Gold metric of the instruct task: every constraint passes and the response is relevant to the reference."""

from __future__ import annotations

from opentao.tasks.docqa.grade import squad_normalize
from opentao.tasks.instruct.constraints import _plain_text, check, relevant

__all__ = ["GOLD_FIELDS", "grade"]

GOLD_FIELDS = ("constraints", "source", "reference")


def grade(row: dict, prediction: str) -> tuple[bool, str]:
    """Gold metric: every constraint passes and the response is relevant to the reference."""
    failed = [c["type"] for c in row["constraints"] if not check(c, prediction)]
    if failed:
        return False, "failed " + ", ".join(failed)
    plain = _plain_text(prediction)
    if row["source"] == "nq":
        norm = f" {squad_normalize(plain)} "
        ok = any(f" {squad_normalize(a)} " in norm for a in row["reference"] if squad_normalize(a)) or relevant(
            prediction, row["question"], row["constraints"], 2)
    else:
        ok = relevant(prediction, row["reference"], row["constraints"], 2)
    return ok, "" if ok else "not relevant to the reference"
