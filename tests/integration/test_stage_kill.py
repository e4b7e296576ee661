"""Stage-kill fuzz, short form: one `tao run` SIGKILLed once inside each stage (generate, score, train, eval),
resumed each time, ends with tables equal to an uninterrupted run's, row for row and without duplicates.
The full fuzz (10 kills per stage) is ``benchmarks/stage_kill_fuzz.py``."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _fuzz():
    spec = importlib.util.spec_from_file_location("stage_kill_fuzz", REPO / "benchmarks" / "stage_kill_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_run_killed_in_every_stage_resumes_to_the_reference_tables(tmp_path, tiny_model_dir):
    fuzz = _fuzz()
    cfg = fuzz.write_inputs(tmp_path, tiny_model_dir)
    ref, wall = fuzz.reference(cfg, tmp_path)
    rng = random.Random(1)
    run_dir = tmp_path / "killed"
    landed = [fuzz.kill_once(cfg, run_dir, stage, wall, rng)["landed"] for stage in fuzz.STAGES]
    assert landed[0] == "generate" and set(landed) <= {*fuzz.STAGES, "after", "finished"}, landed
    fuzz.run_to_end(cfg, run_dir)
    tables = fuzz.compare(ref, run_dir)
    assert tables["candidates"]["rows"] == 8 and tables["eval_results"]["rows"] == 8, tables
    for name, t in tables.items():
        assert t["identical"] and t["duplicates"] == 0, (name, t, landed)


def test_resume_skips_a_checkpoint_torn_by_a_kill_while_saving(tmp_path):
    """A kill while the Trainer saves leaves the newest checkpoint without its (last-written) trainer_state.json:
    training resumes from the previous complete one, and the torn folder goes."""
    from opentao.train.trainer import _last_checkpoint

    for step, state in ((1, '{"global_step": 1}'), (2, '{"global_step": 2}'), (3, None), (4, '{"global_st')):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (ckpt / "trainer_state.json").write_text(state)
    assert _last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert _last_checkpoint(tmp_path / "nothing-here") is None
