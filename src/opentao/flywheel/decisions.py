"""The ``decisions`` table: one row per promotion decision (a round's gate, or a rollback), and its rendering."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from opentao.records import arrow_schema
from opentao.store import atomic_write_bytes

@dataclass
class Decision:
    """One row of the decisions table: a gate's verdict or a rollback (a value never given is null)."""

    kind: str | None = None  # round | rollback
    round: int | None = None
    time: float | None = None
    promoted: bool | None = None
    current_version: str | None = None
    candidate_version: str | None = None
    served_after: str | None = None
    current_score: float | None = None
    candidate_score: float | None = None
    margin: float | None = None
    evaluator: str | None = None
    n_eval: int | None = None
    n_prompts: int | None = None
    reason: str | None = None
    details: str | None = None  # JSON
    confidence: float | None = None
    p_value: float | None = None


DECISION_SCHEMA = arrow_schema(Decision)


def record_decision(root: Path, key: str, row: dict[str, Any]) -> None:
    full = {name: row.get(name) for name in DECISION_SCHEMA.names}
    full["details"] = json.dumps(row.get("details") or {}, sort_keys=True)
    full["time"] = full["time"] or time.time()
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist([full], schema=DECISION_SCHEMA), buf)
    atomic_write_bytes(root / "tables" / "decisions" / f"part-{key}.parquet", buf.getvalue().to_pybytes())


def read_decisions(root: str | Path) -> list[dict[str, Any]]:
    parts = sorted((Path(root) / "tables" / "decisions").glob("part-*.parquet"))
    rows = [r for p in parts for r in pq.read_table(p).to_pylist()]
    return sorted(rows, key=lambda r: r["time"])


def format_decision(d: dict[str, Any]) -> str:
    if d["kind"] == "rollback":
        return f"rollback: {d['current_version']} → {d['served_after']} ({d['reason']})"
    if d.get("current_score") is None:
        return f"round {d['round']}: not promoted — {d['reason']}; serving {d['served_after']}"
    verdict = "PROMOTED" if d["promoted"] else "not promoted"
    return (f"round {d['round']}: {d.get('evaluator')} gate: current {d['current_version']} "
            f"{d['current_score']:.3f} vs candidate {d['candidate_version']} {d['candidate_score']:.3f} "
            f"(n={d.get('n_eval')}, margin {d['margin']}{_significance(d)}) → {verdict}; "
            f"serving {d['served_after']}")


def _significance(d: dict[str, Any]) -> str:
    if d.get("p_value") is None:
        return ""
    return f", p={d['p_value']:.3g} at confidence {d.get('confidence')}"
