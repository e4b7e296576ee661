"""Plots for ``tao report`` and the gateway's ``/dashboard``: matplotlib figures rendered to inline SVG.

Why matplotlib → SVG: it is already a dependency (the benchmark's plots), the page needs no JavaScript and no
network (an ``<svg>`` element is part of the HTML itself, so the file opens from disk anywhere), and the output
is deterministic (fixed ``svg.hashsalt``, no date metadata), so two renders of one run are byte-identical. Text
is drawn as paths (matplotlib's default ``svg.fonttype``), so no model-written string becomes SVG text markup.

Each function takes the already-computed numbers of :mod:`opentao.report.data` (or the dashboard's) and only
draws; it uses the object-oriented API (``Figure``, no ``pyplot``), which is safe in the server's threads.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_RC = {"svg.hashsalt": "opentao", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def new_figure(width: float = 5.0, height: float = 3.0) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (no XML prolog, no date), ready to inline in HTML."""
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        FigureCanvasSVG(fig)
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = re.sub(r"<metadata>.*?</metadata>", "", buf.getvalue(), count=1, flags=re.S)  # RDF boilerplate
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.S)


def _short(label: str, n: int = 28) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= n else label[: n - 1] + "…"


def score_histograms(dists: dict[str, dict[str, Any]]) -> str:
    names = list(dists)
    fig = new_figure(2.4 * max(len(names), 1), 2.4)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names):
        d = dists[name]
        if d["counts"]:
            edges = d["edges"]
            if len(d["counts"]) == 1:
                ax.bar([edges[0]], d["counts"], width=0.1 * (abs(edges[0]) or 1), color="#4c72b0")
            else:
                ax.stairs(d["counts"], edges, fill=True, color="#4c72b0")
        ax.set_title(f"{name}\nn={d['n']}, abstained {d['abstained']}")
        ax.set_xlabel("score")
    axes[0].set_ylabel("candidates")
    return to_svg(fig)


def agreement_heatmap(agreement: dict[str, Any]) -> str:
    names, matrix = agreement["scorers"], agreement["matrix"]
    k = max(len(names), 1)
    fig = new_figure(1.2 + 0.9 * k, 0.9 + 0.8 * k)
    ax = fig.subplots()
    values = [[float("nan") if v is None else v for v in row] for row in matrix] or [[float("nan")]]
    im = ax.imshow(values, vmin=-1, vmax=1, cmap="RdBu")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, "–" if v is None else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if v is not None and abs(v) > 0.6 else "black")
    ax.set_xticks(range(len(names)), [_short(n, 16) for n in names], rotation=30, ha="right")
    ax.set_yticks(range(len(names)), [_short(n, 16) for n in names])
    fig.colorbar(im, ax=ax, shrink=0.8, label="Pearson r")
    return to_svg(fig)


def ci_plot(points: Sequence[dict[str, Any]], ylabel: str = "held-out accuracy") -> str:
    """Points with 95% CI error bars, one per labelled model (``accuracy``, ``lo``, ``hi``)."""
    fig = new_figure(1.6 + 0.9 * max(len(points), 1), 2.8)
    ax = fig.subplots()
    xs = range(len(points))
    for x, p in zip(xs, points):
        lo = p["lo"] if p["lo"] is not None else p["accuracy"]
        hi = p["hi"] if p["hi"] is not None else p["accuracy"]
        ax.errorbar([x], [p["accuracy"]], yerr=[[p["accuracy"] - lo], [hi - p["accuracy"]]], fmt="o", capsize=4)
    ax.set_xticks(list(xs), [_short(p["label"], 14) for p in points])
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    return to_svg(fig)


def line_plot(series: dict[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str,
              ylim: tuple[float, float] | None = None) -> str:
    fig = new_figure(4.4, 2.6)
    ax = fig.subplots()
    for name, pts in series.items():
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=_short(name, 24))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if len(series) > 1:
        ax.legend(fontsize=7)
    return to_svg(fig)


def share_bars(rows: Sequence[dict[str, Any]]) -> str:
    """Stacked horizontal bars: the class shares of each answer source (collapse telemetry)."""
    fig = new_figure(5.4, 0.8 + 0.45 * max(len(rows), 1))
    ax = fig.subplots()
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#bbbbbb"]
    for i, r in enumerate(rows):
        left = 0.0
        for j, (label, share) in enumerate(r["classes"]):
            ax.barh([i], [share], left=left, color=palette[min(j, len(palette) - 1)], edgecolor="white")
            if share >= 0.12:
                ax.text(left + share / 2, i, _short(label, 14), ha="center", va="center", fontsize=6)
            left += share
    ax.set_yticks(range(len(rows)), [f"r{r['round']} {_short(r['source'], 22)}" for r in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of answers")
    ax.invert_yaxis()
    return to_svg(fig)


def bar_plot(labels: Sequence[str], values: Sequence[float], ylabel: str) -> str:
    fig = new_figure(1.6 + 0.7 * max(len(labels), 1), 2.6)
    ax = fig.subplots()
    ax.bar(range(len(labels)), values, color="#4c72b0")
    if all(v >= 0 for v in values):
        ax.set_ylim(0, None if any(values) else 1)
    ax.set_xticks(range(len(labels)), [_short(v, 14) for v in labels], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    return to_svg(fig)


def grouped_bars(labels: Sequence[str], groups: dict[str, Sequence[float]], ylabel: str) -> str:
    fig = new_figure(1.8 + 0.9 * max(len(labels), 1), 2.6)
    ax = fig.subplots()
    width = 0.8 / max(len(groups), 1)
    for i, (name, vals) in enumerate(groups.items()):
        ax.bar([x + i * width for x in range(len(labels))], vals, width=width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], [_short(v, 14) for v in labels])
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return to_svg(fig)
