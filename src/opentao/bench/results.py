"""One JSON file per finished benchmark arm; a rerun skips the arms whose file is already there.

An arm's file is written atomically only when the arm has finished, so a run killed mid-arm (a session ends)
loses that arm's in-flight work at most — and even less, because the arms themselves resume from their run
directories (generation parts, trainer checkpoints, cached evals).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.store import atomic_write_text


@dataclass(frozen=True)
class ArmSpec:
    """One unit of benchmark work: ``name`` is unique within a mode and names the result file."""

    name: str
    arm: str  # base | sft | tao | oracle | multitask | scale
    tasks: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


class ResultDir:
    def __init__(self, root: str | Path, mode: str) -> None:
        self.root = Path(root)
        self.mode = mode

    def path(self, name: str) -> Path:
        return self.root / f"{self.mode}-{name}.json"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> dict[str, Any] | None:
        p = self.path(name)
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def save(self, name: str, data: dict[str, Any]) -> Path:
        p = self.path(name)
        atomic_write_text(p, json.dumps(data, indent=1, sort_keys=True) + "\n")
        return p

    def all(self) -> dict[str, dict[str, Any]]:
        """Every finished arm of this mode, by name."""
        out = {}
        for p in sorted(self.root.glob(f"{self.mode}-*.json")):
            out[p.stem.removeprefix(f"{self.mode}-")] = json.loads(p.read_text(encoding="utf-8"))
        return out


def machine_info() -> dict:
    """What an arm ran on: Python, CPU, and the compute dtype ``auto`` picks there (it changes the numbers a little
    and the speed a lot)."""
    import torch

    from opentao.models import pick_device, pick_dtype

    return {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "dtype": str(pick_dtype("auto", pick_device())).removeprefix("torch."),
            "torch_threads": torch.get_num_threads()}


def run_arms(specs: Iterable[ArmSpec], runner: Callable[[ArmSpec], dict[str, Any]], results: ResultDir, *,
             seed: int, config: dict[str, Any], report: Callable[[str], None] = print,
             deadline: float | None = None) -> dict[str, str]:
    """Run each arm whose result file is missing and save it as soon as it finishes.

    Returns ``{arm name: "done" | "skipped" | "deadline"}``; arms left when ``deadline`` (a ``time.time()``)
    has passed are not started, so a session can stop cleanly and the next one resumes.
    """
    status: dict[str, str] = {}
    for spec in specs:
        if results.done(spec.name):
            status[spec.name] = "skipped"
            report(f"[skip] {spec.name}: already in {results.path(spec.name).name}")
            continue
        if deadline is not None and time.time() > deadline:
            status[spec.name] = "deadline"
            continue
        report(f"[run ] {spec.name} ...")
        t0 = time.time()
        data = runner(spec)
        data.update(
            name=spec.name, arm=spec.arm, tasks=list(spec.tasks), params=spec.params, mode=results.mode, seed=seed,
            config=config, wall_seconds=time.time() - t0, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            machine=machine_info(),
        )
        results.save(spec.name, data)
        status[spec.name] = "done"
        report(f"[done] {spec.name} in {data['wall_seconds']:.0f} s")
    return status
