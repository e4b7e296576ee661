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
3. **Gate.** ``opentao.evaluate.gate`` scores current vs candidate on one scale: a labeled dev set if given,
   else a pairwise judge (or the round's own label-free scorers, ``gate.kind: reward``) on the held-out
   prompts. Promote only if ``candidate - current >= margin`` *and* a one-sided paired sign test over the
   per-example scores puts the candidate ahead at ``gate.confidence`` (default 0.95: p <= 0.05).
4. **Decide.** A row in the ``decisions`` table (both scores, margin, the confidence level and the test's
   p-value, its wins/losses/ties in ``details.significance``, versions, promoted yes/no, reason);
   a promotion rewrites ``current.json``, which the running server picks up without dropping requests.

``tao rollback`` pops the pointer history (and records a decision row). State is ``flywheel.json`` (the
cut-off and the round counter), written after the decision: a round that crashes is resumed by re-running the
same command (its export is kept and the pipeline skips finished stages).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from opentao.config import read_config_data, validate_config
from opentao.data import ROLES, prompt_id_of
from opentao.errors import TaoError
from opentao.records import Message, Prompt
from opentao.serve.host import pop_pointer, read_pointer, write_pointer
from opentao.serve.log import read_rows
from opentao.store import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

STATE_FILE = "flywheel.json"
RESERVED_TAO_KEYS = {"run_dir", "model", "prompts", "rounds", "eval", "max_prompts"}
DECISION_SCHEMA = pa.schema([
    ("kind", pa.string()), ("round", pa.int64()), ("time", pa.float64()), ("promoted", pa.bool_()),
    ("current_version", pa.string()), ("candidate_version", pa.string()), ("served_after", pa.string()),
    ("current_score", pa.float64()), ("candidate_score", pa.float64()), ("margin", pa.float64()),
    ("evaluator", pa.string()), ("n_eval", pa.int64()), ("n_prompts", pa.int64()), ("reason", pa.string()),
    ("details", pa.string()), ("confidence", pa.float64()), ("p_value", pa.float64()),
])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateConfig(_Strict):
    kind: str = Field("judge", description="judge | reward | exact | sql | package.module:attr")
    data: str | None = Field(None, description="labeled dev set (exact / sql)")
    db: str | None = None
    match: str = "exact"
    task: str | None = Field(None, description="exact: grade the dev set with this task's grader (as tao eval)")
    judge_model: str | None = Field(None, description="judge model folder (default: bundled)")
    max_examples: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] = Field(default_factory=list)
    confidence: float = Field(0.95, ge=0, lt=1, description="promote only if a one-sided paired sign test "
                              "says the candidate is better at this level (0: no test, margin only)")


class FlywheelConfig(_Strict):
    dir: str = "flywheel"
    min_prompts: int = Field(8, ge=1)
    max_prompts: int | None = Field(256, ge=1)
    sample: float = Field(1.0, gt=0, le=1, description="share of the new prompts to use")
    holdout: float = Field(0.2, ge=0, lt=1, description="share held out for the judge gate")
    margin: float = Field(0.05, ge=0, description="promote only if candidate - current >= margin")
    key_ids: list[str] = Field(default_factory=list, description="only traffic of these API key ids")
    filter: dict[str, str] = Field(default_factory=dict, description="request metadata that must match")
    seed: int = 0
    gate: GateConfig = Field(default_factory=GateConfig)
    tao: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields: generate, score, train, ...")


def load_flywheel_config(path: str | Path | None = None, overrides: list[str] | None = None,
                         **direct: Any) -> FlywheelConfig:
    cfg = validate_config(FlywheelConfig, read_config_data(path, overrides, **direct), "flywheel config")
    bad = RESERVED_TAO_KEYS & set(cfg.tao)
    if bad:
        raise TaoError(f"flywheel config: tao.{sorted(bad)[0]} is set by the flywheel itself; remove it")
    return cfg


def parse_duration(text: str) -> float:
    """'90s', '30m', '6h', '1d' (or plain seconds) → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise TaoError(f"duration {text!r}: use a number with s, m, h or d, e.g. 30m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


# --- state ------------------------------------------------------------------------------------------------
def read_state(root: Path) -> dict[str, Any]:
    path = root / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"last_seq": -1, "rounds": 0}


def write_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write_text(root / STATE_FILE, json.dumps(state, indent=2) + "\n")


# --- export -----------------------------------------------------------------------------------------------
def conversations_of(row: dict[str, Any]) -> list[list[Message]]:
    """The answerable conversations of a logged row (a completions request may carry several prompts)."""
    try:
        msgs = json.loads(row["messages"]) if isinstance(row["messages"], str) else row["messages"]
    except ValueError:
        return []
    convs = msgs if msgs and isinstance(msgs[0], list) else [msgs]
    good = []
    for conv in convs:
        if (conv and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                         for m in conv)
                and conv[-1]["role"] == "user" and conv[-1]["content"].strip()):
            good.append([{"role": m["role"], "content": m["content"]} for m in conv])
    return good


def select_prompts(rows: list[dict[str, Any]], cfg: FlywheelConfig, round_: int) -> tuple[list[Prompt], dict]:
    stats = {"rows": len(rows), "failed": 0, "filtered": 0, "duplicates": 0, "unanswerable": 0}
    prompts: dict[str, Prompt] = {}
    for row in rows:
        if row["status"] != 200:
            stats["failed"] += 1
            continue
        meta = json.loads(row["metadata"] or "{}").get("metadata", {}) if row.get("metadata") else {}
        if (cfg.key_ids and row["key_id"] not in cfg.key_ids) or any(meta.get(k) != v for k, v in cfg.filter.items()):
            stats["filtered"] += 1
            continue
        convs = conversations_of(row)
        stats["unanswerable"] += not convs
        for conv in convs:
            pid = prompt_id_of(conv)
            if pid in prompts:
                stats["duplicates"] += 1
            else:
                prompts[pid] = Prompt(pid, conv, round=1, meta={"request_id": row["request_id"]})
    chosen = list(prompts.values())
    rng = random.Random(cfg.seed * 1_000_003 + round_)
    if cfg.sample < 1.0:
        chosen = rng.sample(chosen, round(len(chosen) * cfg.sample))
    if cfg.max_prompts and len(chosen) > cfg.max_prompts:
        chosen = rng.sample(chosen, cfg.max_prompts)
    stats["selected"] = len(chosen)
    return chosen, stats


def split_holdout(prompts: list[Prompt], share: float) -> tuple[list[Prompt], list[Prompt]]:
    """Deterministic by prompt id, so a prompt is held out in every round it appears in."""
    held = [p for p in prompts if share > 0 and int(p.prompt_id[:8], 16) / 0xFFFFFFFF < share]
    if share > 0 and not held and len(prompts) > 1:
        held = [max(prompts, key=lambda p: p.prompt_id)]
    ids = {p.prompt_id for p in held}
    return [p for p in prompts if p.prompt_id not in ids], held


def _write_prompts(path: Path, prompts: list[Prompt]) -> None:
    text = "".join(json.dumps({"id": p.prompt_id, "messages": p.messages}, ensure_ascii=False) + "\n"
                   for p in prompts)
    atomic_write_text(path, text)


def _read_prompts(path: Path) -> list[Prompt]:
    if not path.is_file() or not path.read_text().strip():
        return []
    from opentao.data import load_prompts

    return load_prompts(path, round_=1)


# --- decisions --------------------------------------------------------------------------------------------
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


def confidence_test(scores, confidence: float) -> dict[str, Any]:
    """The gate's paired sign test (:func:`opentao.evaluate.significance.sign_test`) at ``confidence``:
    passed when its one-sided p-value is at most ``1 - confidence``; ``confidence`` 0 turns the test off.
    Scores without per-example pairs cannot pass (unless the test is off)."""
    from opentao.evaluate.significance import sign_test

    if not confidence:
        return {"passed": True, "confidence": 0.0, "summary": "significance test off"}
    if not scores.per_example:
        return {"passed": False, "confidence": confidence, "p_value": None,
                "summary": f"the {confidence:g} confidence test needs per-example scores; this evaluator has none"}
    t = sign_test([a for a, _ in scores.per_example], [b for _, b in scores.per_example])
    passed = t["p_value"] <= 1.0 - confidence
    return {**t, "passed": passed, "confidence": confidence, "test": "sign",
            "summary": (f"sign test {t['wins']} wins, {t['losses']} losses, {t['ties']} ties: one-sided "
                        f"p={t['p_value']:.3g} {'<=' if passed else '>'} {1 - confidence:.3g}")}


def gate(root: Path, *, candidate: str, candidate_version: str, evaluator, margin: float, round_: int,
         n_prompts: int = 0, extra: dict[str, Any] | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """Compare candidate vs the served model; promote (rewrite the pointer) only if it wins by ``margin`` and
    the paired sign test says it is better at ``confidence`` (:func:`confidence_test`)."""
    cur = read_pointer(root)
    if cur is None:
        raise TaoError(f"no served model in {root}: start 'tao serve --dir {root}' once first")
    scores = evaluator.compare(cur["path"], candidate)
    delta = scores.candidate - scores.current
    test = confidence_test(scores, confidence)
    promoted = delta >= margin and delta > 0 and test["passed"]
    if promoted:
        reason = f"candidate wins by {delta:+.3f} (margin {margin}; {test['summary']})"
    elif delta >= margin and delta > 0:
        reason = f"candidate {delta:+.3f} vs current, not significant: {test['summary']}"
    else:
        reason = f"candidate {delta:+.3f} vs current, below the margin {margin}"
    if promoted:
        write_pointer(root, candidate_version, candidate, f"round {round_}: {reason}")
    decision = {"kind": "round", "round": round_, "time": time.time(), "promoted": promoted,
                "current_version": cur["version"], "candidate_version": candidate_version,
                "served_after": candidate_version if promoted else cur["version"],
                "current_score": scores.current, "candidate_score": scores.candidate, "margin": margin,
                "evaluator": evaluator.name, "n_eval": scores.n, "n_prompts": n_prompts, "reason": reason,
                "confidence": confidence, "p_value": test.get("p_value"),
                "details": {**scores.details, **(extra or {}),
                            "significance": {k: v for k, v in test.items() if k != "summary"}}}
    record_decision(root, f"round-{round_:05d}", decision)
    return decision


def rollback(root: str | Path, reason: str = "manual rollback") -> dict[str, Any]:
    root = Path(root)
    before = read_pointer(root)
    after = pop_pointer(root, reason)
    decision = {"kind": "rollback", "round": read_state(root)["rounds"], "time": time.time(), "promoted": False,
                "current_version": before["version"], "candidate_version": after["version"],
                "served_after": after["version"], "margin": 0.0, "evaluator": "", "n_eval": 0, "n_prompts": 0,
                "reason": reason}
    record_decision(root, f"rollback-{time.time_ns()}", decision)
    return decision


# --- a round ----------------------------------------------------------------------------------------------
def run_round(cfg: FlywheelConfig, *, report=print) -> dict[str, Any]:
    """One flywheel round. Returns the decision (or ``{"skipped": reason}``)."""
    from opentao.config import load_config
    from opentao.evaluate.gate import build_evaluator
    from opentao.pipeline import run_rounds, validate
    from opentao.telemetry import promotion_refusal

    root = Path(cfg.dir)
    pointer = read_pointer(root)
    if pointer is None:
        raise TaoError(f"no served model in {root}: start 'tao serve --dir {root}' once first")
    state = read_state(root)
    round_ = state["rounds"] + 1
    rdir = root / "rounds" / f"round-{round_}"
    export_path = rdir / "export.json"

    def run_config(prompts_file: str | None, model: str):
        return load_config(None, None, **{**cfg.tao, "run_dir": str(rdir / "run"), "model": model,
                                          "prompts": prompts_file, "rounds": 1})

    validate(run_config(None, pointer["path"]), ("score",))  # a config mistake must not consume prompts
    if export_path.is_file():
        export = json.loads(export_path.read_text())
        report(f"round {round_}: resuming (export of {export['stats']['selected']} prompts kept)")
    else:
        rows = read_rows(root, since_seq=state["last_seq"])
        chosen, stats = select_prompts(rows, cfg, round_)
        if len(chosen) < cfg.min_prompts:
            msg = (f"only {len(chosen)} new prompt(s) since the last round (min_prompts {cfg.min_prompts}); "
                   f"nothing to do")
            report(f"round {round_}: {msg}")
            return {"skipped": msg, "stats": stats}
        train, held = split_holdout(chosen, cfg.holdout)
        rdir.mkdir(parents=True, exist_ok=True)
        _write_prompts(rdir / "prompts.jsonl", train)
        _write_prompts(rdir / "heldout.jsonl", held)
        cutoff = max([state["last_seq"], *(r["seq"] for r in rows)])
        export = {"cutoff_seq": cutoff, "base_version": pointer["version"], "base_path": pointer["path"],
                  "stats": {**stats, "train": len(train), "heldout": len(held)}}
        atomic_write_text(export_path, json.dumps(export, indent=2) + "\n")
        s = export["stats"]
        report(f"round {round_}: {s['rows']} logged rows → {s['selected']} prompts ({s['failed']} failed, "
               f"{s['filtered']} filtered, {s['duplicates']} duplicates dropped); {s['train']} train, "
               f"{s['heldout']} held out")
    run_cfg = run_config(str(rdir / "prompts.jsonl"), export["base_path"])
    candidate_version = f"round-{round_}"
    try:
        # the round's run directory holds one pipeline round: say "tao" rather than its "round 1"
        res = run_rounds(run_cfg, report=lambda line: report("  tao " + line.removeprefix("round 1 ")))
        candidate = res["rounds"][-1]["train"]["model"]
        refusal = promotion_refusal(res)  # a collapsed round, or one the run did not keep, is never promoted
        if refusal:
            raise TaoError(refusal)
    except TaoError as exc:  # e.g. no candidate scored above the threshold: a recorded non-promotion
        decision = {"kind": "round", "round": round_, "promoted": False, "current_version": pointer["version"],
                    "candidate_version": "", "served_after": pointer["version"], "margin": cfg.margin,
                    "n_prompts": export["stats"]["train"], "reason": f"no candidate: {exc}"}
        record_decision(root, f"round-{round_:05d}", decision)
    else:
        evaluator = build_evaluator(cfg.gate.model_dump(), _read_prompts(rdir / "heldout.jsonl"), run_cfg=run_cfg,
                                    dtype=run_cfg.dtype, device=run_cfg.device)
        decision = gate(root, candidate=candidate, candidate_version=candidate_version, evaluator=evaluator,
                        margin=cfg.margin, round_=round_, n_prompts=export["stats"]["train"],
                        confidence=cfg.gate.confidence,
                        extra={"export": export["stats"]})
    write_state(root, {"last_seq": export["cutoff_seq"], "rounds": round_})
    report(format_decision(decision))
    return decision


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
