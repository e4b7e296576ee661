"""A few Prometheus metrics in the text exposition format, without a client library.

Counters and histograms with fixed buckets, labelled by a small closed set of values (endpoint, status), so
memory stays bounded. Gauges are read from callables at scrape time (queue depth, model version, log stats).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self.histograms: dict[str, dict[tuple, Histogram]] = defaultdict(dict)
        self.gauges: dict[str, Callable[[], list[tuple[dict[str, str], float]]]] = {}
        self.help: dict[str, str] = {}

    def inc(self, name: str, value: float = 1.0, help: str = "", **labels: str) -> None:
        with self._lock:
            self.counters[name][tuple(sorted(labels.items()))] += value
            self.help.setdefault(name, help)

    def observe(self, name: str, value: float, buckets: tuple[float, ...] = LATENCY_BUCKETS, help: str = "",
                **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            hist = self.histograms[name].setdefault(key, Histogram(buckets))
            hist.observe(value)
            self.help.setdefault(name, help)

    def gauge(self, name: str, read: Callable[[], list[tuple[dict[str, str], float]]], help: str = "") -> None:
        self.gauges[name] = read
        self.help[name] = help

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self.counters.items()):
                lines += [f"# HELP {name} {self.help.get(name, '')}", f"# TYPE {name} counter"]
                lines += [f"{name}{_labels(dict(k))} {v:g}" for k, v in sorted(series.items())]
            for name, series in sorted(self.histograms.items()):
                lines += [f"# HELP {name} {self.help.get(name, '')}", f"# TYPE {name} histogram"]
                for key, h in sorted(series.items()):
                    labels = dict(key)
                    for b, c in zip(h.buckets, h.counts):
                        lines.append(f"{name}_bucket{_labels({**labels, 'le': f'{b:g}'})} {c}")
                    lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {h.total}")
                    lines.append(f"{name}_sum{_labels(labels)} {h.sum:g}")
                    lines.append(f"{name}_count{_labels(labels)} {h.total}")
        for name, read in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {self.help.get(name, '')}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(labels)} {value:g}" for labels, value in read()]
        return "\n".join(lines) + "\n"
