"""One flywheel round: export → TAO round → gate → decision (see :mod:`opentao.flywheel`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.flywheel.config import FlywheelConfig
from opentao.flywheel.decisions import format_decision, record_decision
from opentao.flywheel.export import read_prompts, write_prompts, select_prompts, split_holdout
from opentao.flywheel.gates import build_evaluator, gate
from opentao.flywheel.state import read_state, write_state
from opentao.serve.host import read_pointer
from opentao.serve.log import read_rows
from opentao.store import atomic_write_text


def run_round(cfg: FlywheelConfig, *, report=print) -> dict[str, Any]:
    """One flywheel round. Returns the decision (or ``{"skipped": reason}``)."""
    from opentao.config import load_config
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
        write_prompts(rdir / "prompts.jsonl", train)
        write_prompts(rdir / "heldout.jsonl", held)
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
        evaluator = build_evaluator(cfg.gate.model_dump(), read_prompts(rdir / "heldout.jsonl"), run_cfg=run_cfg,
                                    dtype=run_cfg.dtype, device=run_cfg.device)
        decision = gate(root, candidate=candidate, candidate_version=candidate_version, evaluator=evaluator,
                        margin=cfg.margin, round_=round_, n_prompts=export["stats"]["train"],
                        confidence=cfg.gate.confidence,
                        extra={"export": export["stats"]})
    write_state(root, {"last_seq": export["cutoff_seq"], "rounds": round_})
    report(format_decision(decision))
    return decision
