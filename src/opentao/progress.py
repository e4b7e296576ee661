"""Progress for long stages: a rich bar with rates and an ETA on a terminal, a plain line otherwise (logs, CI).

``progress_bar(description, total, unit=..., rates=..., counts=...)`` yields ``advance(n=1, **counts)``:
``n`` units of work are done and each keyword adds to a running count (``tokens=...``, ``abstained=...``).
``rates`` names the counts shown per second (``tokens`` → "tokens/s"), ``counts`` those shown as totals so
far; ``advance.set(**values)`` shows the latest value of anything else (a training loss). The status text is
built by :func:`format_status`, a pure function, so what a user reads is tested apart from the terminal.

Off a terminal (CI, ``nohup``) a line is printed at most every ``every_s`` seconds and always when the stage
finishes; generation and eval pass ``every_s=0`` (one line per part / batch), scoring and training keep ~30 s. E.g. ``generate r1: 16/32 prompts, 0.41 prompts/s, 96 tokens/s, ETA 39 s (39 s)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 1000 else f"{v:.3g}"


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_status(done: int, total: int, elapsed: float, *, unit: str = "", counts: dict[str, float] | None = None,
                  rates: Sequence[str] = (), totals: Sequence[str] = (), values: dict[str, Any] | None = None,
                  eta: bool = True) -> str:
    """``"units/s, <rate>/s ..., <count> so far ..., key value ..., ETA"``: the text after the bar.

    A rate is count / elapsed seconds (``–`` before any time has passed); the ETA assumes the remaining units
    go at the rate so far (``–`` until one is done).
    """
    counts, values = counts or {}, values or {}
    parts = []
    if elapsed > 0 and done:
        parts.append(f"{_rate(done / elapsed)} {unit or 'units'}/s")
    for name in rates:
        v = counts.get(name, 0)
        parts.append(f"{_rate(v / elapsed)} {name}/s" if elapsed > 0 else f"– {name}/s")
    parts += [f"{name} {_num(counts.get(name, 0))}" for name in totals]
    parts += [f"{k} {_num(v)}" for k, v in values.items() if v is not None]
    if eta:
        remaining = (total - done) * elapsed / done if done and total >= done else None
        parts.append(f"ETA {format_eta(remaining)}")
    return ", ".join(parts)


class Advance:
    """The callable a stage gets: ``advance(n, **counts)`` and ``advance.set(**values)``."""

    def __init__(self, description: str, total: int, unit: str, rates: Sequence[str], totals: Sequence[str],
                 every_s: float, prog: Progress | None = None):
        self.description, self.total, self.unit = description, total, unit
        self.rates, self.totals, self.every_s, self.prog = tuple(rates), tuple(totals), every_s, prog
        self.done = 0
        self.counts: dict[str, float] = {}
        self.values: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.task = prog.add_task(description, total=total, status="") if prog is not None else None

    def status(self, *, eta: bool = True) -> str:
        return format_status(self.done, self.total, time.monotonic() - self.start, unit=self.unit,
                             counts=self.counts, rates=self.rates, totals=self.totals, values=self.values, eta=eta)

    def set(self, **values: Any) -> None:
        self.values.update(values)
        self._show(0)

    def __call__(self, n: int = 1, **counts: float) -> None:
        self.done += n
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self._show(n)

    def _show(self, n: int) -> None:
        if self.prog is not None:
            self.prog.update(self.task, advance=n, status=self.status(eta=False))
            return
        now = time.monotonic()
        if n and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            unit = f" {self.unit}" if self.unit else ""
            console.print(f"{self.description}: {self.done}/{self.total}{unit}, {self.status()} "
                          f"({now - self.start:.0f} s)", highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int, every_s: float = 30.0, *, unit: str = "", rates: Sequence[str] = (),
                 counts: Sequence[str] = ()) -> Iterator[Advance]:
    if not console.is_terminal:
        yield Advance(description, total, unit, rates, counts, every_s)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        console=console,
    ) as prog:
        yield Advance(description, total, unit, rates, counts, every_s, prog)
