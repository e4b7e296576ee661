"""One JSON file per finished benchmark arm; a rerun skips the arms whose file is already there.

An arm's file is written atomically only when the arm has finished, so a run killed mid-arm (a session ends)
loses that arm's in-flight work at most — and even less, because the arms themselves resume from their run
directories (generation parts, trainer checkpoints, cached evals).

Seeds: an arm run at seed 0 is ``<mode>-<name>.json`` (the name every result had before arms had several seeds,
so those files load as seed 0); at seed ``s > 0`` it is ``<mode>-<name>-s<s>.json``. Arm names therefore never
end in ``-s<digits>`` (:func:`check_name`).
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentao.errors import TaoError
from opentao.store import atomic_write_text

_SEEDED = re.compile(r"^(?P<name>.+)-s(?P<seed>\d+)$")


def check_name(name: str) -> str:
    """An arm name that cannot be mistaken for a seed's result file (no ``-s<digits>`` ending)."""
    if _SEEDED.match(name):
        raise TaoError(f"arm name {name!r} ends like a seed suffix (-s<seed>): rename it")
    return name


def result_stem(name: str, seed: int = 0) -> str:
    """``name`` for seed 0, ``name-s<seed>`` for any other seed."""
    if seed < 0:
        raise TaoError(f"seeds are non-negative integers, got {seed}")
    return check_name(name) if seed == 0 else f"{check_name(name)}-s{seed}"


def parse_stem(stem: str) -> tuple[str, int]:
    """The inverse of :func:`result_stem`: ``(arm name, seed)``."""
    m = _SEEDED.match(stem)
    return (m["name"], int(m["seed"])) if m else (stem, 0)


@dataclass(frozen=True)
class ArmSpec:
    """One unit of benchmark work: ``name`` is unique within a mode and names the result file."""

    name: str
    arm: str  # base | sft | tao | oracle | multitask | scale
    tasks: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


class ResultDir:
    """A mode's result files in ``root``: ``<mode>-<name>.json`` (seed 0) and ``<mode>-<name>-s<seed>.json``."""

    def __init__(self, root: str | Path, mode: str) -> None:
        self.root = Path(root)
        self.mode = mode

    def path(self, name: str, seed: int = 0) -> Path:
        return self.root / f"{self.mode}-{result_stem(name, seed)}.json"

    def done(self, name: str, seed: int = 0) -> bool:
        return self.path(name, seed).is_file()

    def load(self, name: str, seed: int = 0) -> dict[str, Any] | None:
        p = self.path(name, seed)
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def save(self, name: str, data: dict[str, Any], seed: int = 0) -> Path:
        p = self.path(name, seed)
        atomic_write_text(p, json.dumps(data, indent=1, sort_keys=True) + "\n")
        return p

    def all(self) -> dict[str, dict[str, Any]]:
        """Every finished arm of this mode at seed 0, by name (the other seeds' files: :meth:`by_seed`)."""
        return {name: seeds[0] for name, seeds in self.by_seed().items() if 0 in seeds}

    def by_seed(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Every finished arm of this mode, ``{name: {seed: result}}`` (seeds ascending)."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for p in sorted(self.root.glob(f"{self.mode}-*.json")):
            name, seed = parse_stem(p.stem.removeprefix(f"{self.mode}-"))
            out.setdefault(name, {})[seed] = json.loads(p.read_text(encoding="utf-8"))
        return {name: dict(sorted(seeds.items())) for name, seeds in out.items()}


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
    """Run each arm whose result file at ``seed`` is missing and save it (``results.path(name, seed)``) as soon as
    it finishes; ``runner`` must run the arm at that seed.

    Returns ``{arm name: "done" | "skipped" | "redone" | "deadline"}`` ("redone": a finished arm the runner had to
    run again because a later arm grows from its model, returned as ``data["rebuilt"]``, ``[(spec, result)]``,
    each result with its ``wall_seconds``); arms left when ``deadline`` (a ``time.time()``)
    has passed are not started, so a session can stop cleanly and the next one resumes.
    """
    status: dict[str, str] = {}
    tag = "" if seed == 0 else f" (seed {seed})"
    for spec in specs:
        if results.done(spec.name, seed):
            status[spec.name] = "skipped"
            report(f"[skip] {spec.name}{tag}: already in {results.path(spec.name, seed).name}")
            continue
        if deadline is not None and time.time() > deadline:
            status[spec.name] = "deadline"
            continue
        report(f"[run ] {spec.name}{tag} ...")
        t0 = time.time()
        data = runner(spec)
        # arms the runner had to run again first (their run directories were gone): their files are replaced
        redone = 0.0
        for earlier, res in data.pop("rebuilt", []):
            wall = res.pop("wall_seconds")
            redone += wall
            results.save(earlier.name, _stamp(earlier, res, results.mode, seed, config, wall), seed)
            status[earlier.name] = "redone"
            report(f"[redo] {earlier.name}{tag} in {wall:.0f} s: {spec.name} grows from its model; "
                   f"{results.path(earlier.name, seed).name} replaced")
        results.save(spec.name, _stamp(spec, data, results.mode, seed, config, time.time() - t0 - redone), seed)
        status[spec.name] = "done"
        report(f"[done] {spec.name}{tag} in {data['wall_seconds']:.0f} s")
    return status


def _stamp(spec: ArmSpec, data: dict[str, Any], mode: str, seed: int, config: dict[str, Any],
           wall: float) -> dict[str, Any]:
    """An arm's result with what, where and when it ran."""
    data.update(
        name=spec.name, arm=spec.arm, tasks=list(spec.tasks), params=spec.params, mode=mode, seed=seed,
        config=config, wall_seconds=wall, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine_info(),
    )
    return data
