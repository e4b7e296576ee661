"""``tao report``: one self-contained HTML page about one run, or a comparison of several (one column per run).

The page has no script, no stylesheet or image to fetch and no font to download: plots are inline ``<svg>``
(:mod:`opentao.report.plots`), the style is one ``<style>`` element, and a Content-Security-Policy meta tag
(``default-src 'none'``) makes the browser refuse any request the page might still try, and any script.
Every string that comes from a run (model-written candidates and answers above all) goes through
``html.escape``: candidates are untrusted input. The same building blocks render the gateway's dashboard.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentao.report import data as D
from opentao.report import plots as P
from opentao.store import atomic_write_text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;max-width:120em}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1em;margin:.4em 0} .cols{display:grid;gap:1.2em;grid-template-columns:repeat(var(--n),minmax(0,1fr))}
.col{min-width:0;overflow-x:auto} table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f4f4f4} pre{white-space:pre-wrap;word-break:break-word;margin:0;font-size:.95em;max-width:60em}
figure{margin:.4em 0} figure svg{max-width:100%;height:auto} .muted{color:#777} .num{text-align:right}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, pre: Sequence[int] = ()) -> str:
    """An HTML table; every cell escaped. Columns listed in ``pre`` are shown as preformatted text."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = [f"<td><pre>{esc(c)}</pre></td>" if i in pre else f"<td>{esc(fmt(c))}</td>" for i, c in enumerate(r)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(plot_id: str, svg: str, caption: str = "") -> str:
    cap = f"<figcaption class='muted'>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure class='plot' data-plot='{esc(plot_id)}'>{svg}{cap}</figure>"


def muted(text: str) -> str:
    return f"<p class='muted'>{esc(text)}</p>"


def section(section_id: str, title: str, columns: Sequence[tuple[str, str]]) -> str:
    """A section with one column per (heading, inner HTML)."""
    cols = "".join(f"<div class='col'><h3>{esc(name)}</h3>{body}</div>" for name, body in columns)
    return (f"<section id='{esc(section_id)}'><h2>{esc(title)}</h2>"
            f"<div class='cols' style='--n:{len(columns)}'>{cols}</div></section>")


def document(title: str, body: str, subtitle: str = "") -> str:
    sub = f"<p class='muted'>{esc(subtitle)}</p>" if subtitle else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1>{sub}{body}</body></html>\n")


# --- the sections of one run -----------------------------------------------------------------------------------
def _scores(run: D.RunData) -> str:
    dists = D.score_distributions(run.tables["scores"])
    if not dists:
        return muted("no scores")
    rows = [(name, d["n"], d["abstained"], d["mean"]) for name, d in dists.items()]
    return figure("score-distributions", P.score_histograms(dists)) + table(
        ("scorer", "scored", "abstained", "mean"), rows)


def _agreement(run: D.RunData) -> str:
    agr = D.scorer_agreement(run.tables["scores"])
    if len(agr["scorers"]) < 2:
        return muted("fewer than two scorers")
    return figure("scorer-agreement", P.agreement_heatmap(agr),
                  "Pearson r over the candidates both scorers scored; – where undefined (a constant scorer)")


def _heldout(run: D.RunData) -> str:
    pts = D.heldout_metrics(run.summaries)
    if not pts:
        return muted("no held-out evaluation in this run")
    task = pts[0].get("task") or ""
    rows = [(p["label"], p["round"], f"{pct(p['accuracy'])} ({p['correct']}/{p['n']})",
             f"{pct(p['lo'])}–{pct(p['hi'])}") for p in pts]
    return figure("heldout", P.ci_plot(pts, f"{task} accuracy".strip()), "95% Wilson CI") + table(
        ("model", "round", "accuracy", "95% CI"), rows)


def _rounds_k(run: D.RunData) -> str:
    scores = run.tables["scores"]
    curve = D.best_of_k_curve(scores)
    by_round = D.reward_by_round(scores)
    parts = []
    if curve:
        parts.append(figure("quality-vs-k", P.line_plot(
            {"best reward of first k": [(c["k"], c["best_reward"]) for c in curve],
             "groups with signal": [(c["k"], c["signal_share"]) for c in curve]}, "k (candidates per prompt)",
            "mean over prompts"), "label-free: the combined reward of the best of each group's first k samples"))
    if len(by_round) > 1 or len(D.heldout_metrics(run.summaries)) > 2:
        series = {"mean combined reward": [(r["round"], r["mean_reward"]) for r in by_round],
                  "held-out accuracy": [(p["round"], p["accuracy"]) for p in D.heldout_metrics(run.summaries)]}
        parts.append(figure("quality-vs-rounds", P.line_plot(series, "round", "value")))
    parts.append(table(("round", "groups", "mean combined reward", "zero-variance groups"),
                       [(r["round"], r["groups"], r["mean_reward"], pct(r["flat_share"])) for r in by_round]))
    return "".join(parts)


def _training(run: D.RunData) -> str:
    curves = D.training_curves(run)
    if not curves:
        return muted("no training log in this run")
    parts = []
    for round_, series in curves.items():
        main = {k: v for k, v in series.items() if k == "loss" or k.startswith("reward")}
        parts.append(figure(f"training-r{round_}", P.line_plot(main or series, "step", "value"), f"round {round_}"))
        if "learning_rate" in series:
            parts.append(figure(f"lr-r{round_}", P.line_plot({"learning rate": series["learning_rate"]}, "step",
                                                             "learning rate")))
    return "".join(parts)


def _collapse(run: D.RunData) -> str:
    rows = D.collapse_telemetry(run.tables["candidates"], run.tables["eval_results"])
    if not rows:
        return muted("no answers")
    tbl = table(("round", "answers of", "n", "distinct", "entropy (bits)", "top-answer share", "top answer"),
                [(r["round"], r["source"], r["n"], r.get("distinct"), r["entropy_bits"], pct(r["top_share"]),
                  r["classes"][0][0] if r["classes"] else "") for r in rows], pre=(6,))
    return figure("collapse", P.share_bars(rows), "class shares: the five most common answers, the rest as (other)") \
        + tbl


def _candidates(run: D.RunData) -> str:
    groups = D.best_and_worst(run.tables["candidates"], run.tables["scores"])
    if not groups:
        return muted("no candidates")
    parts = []
    for g in groups:
        parts.append(f"<h4>prompt {esc(g['prompt_id'])} (round {g['round']}, reward spread {fmt(g['spread'])})</h4>")
        for label, cands in (("best", g["best"]), ("worst", g["worst"])):
            if cands:
                parts.append(f"<p>{label}</p>" + table(
                    ("candidate", "strategy", "reward", "response"),
                    [(c["candidate_id"], c["strategy"], c["reward"], c["response"]) for c in cands], pre=(3,)))
    return "<div class='candidates'>" + "".join(parts) + "</div>"


def _integrity(run: D.RunData) -> str:
    rows = run.tables["integrity"]
    if not rows:
        return muted("no integrity check (tao score --gold) in this run")
    return table(("round", "scorer", "role", "best-of-K", "random pick", "pass@K", "AUC", "AUC in group",
                  "zero-var groups", "verdict"),
                 [(r["round"], r["scorer"], r["role"], pct(r["best_of_k"]), pct(r["mean_acc"]), pct(r["oracle"]),
                   r["auc"], r["auc_within"], pct(r["zero_var"]), r["verdict"]) for r in rows])


def _cost(run: D.RunData) -> str:
    c = D.cost(run)
    parts = [table(("candidate tokens", "eval answer tokens", "total wall time (s)"),
                   [(c["candidate_tokens"], c["eval_tokens"], c["total_wall_s"])])]
    parts.append(table(("round", "tokens generated", "generate s", "tokens/s"),
                       [(r["round"], r["tokens"], r["generate_s"], r["tokens_per_s"]) for r in c["rounds"]]))
    if c["stages"]:
        labels = [f"r{s['round']} {s['stage']}" for s in c["stages"]]
        parts.insert(0, figure("wall-time", P.bar_plot(labels, [s["wall_s"] for s in c["stages"]], "seconds"),
                               "wall time per stage (summary/run.json)"))
    return "".join(parts)


SECTIONS = (
    ("scores", "Score distributions per scorer", _scores),
    ("agreement", "Scorer agreement", _agreement),
    ("heldout", "Base vs tuned on the held-out metric", _heldout),
    ("quality", "Quality vs K and rounds", _rounds_k),
    ("training", "Training curves", _training),
    ("collapse", "Collapse telemetry", _collapse),
    ("candidates", "Best and worst candidates", _candidates),
    ("integrity", "Reward integrity", _integrity),
    ("cost", "Cost", _cost),
)


def render_report(run_dirs: Sequence[str | Path]) -> str:
    runs = [D.load_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # two runs both called "run": tell them apart by their parent folder
        names = [f"{r.root.parent.name}/{r.root.name}" for r in runs]
    body = "".join(section(sid, title, [(n, fn(r)) for n, r in zip(names, runs)]) for sid, title, fn in SECTIONS)
    title = f"TAO run {names[0]}" if len(runs) == 1 else f"TAO runs compared: {', '.join(names)}"
    return document(title, body, "written by tao report; every plot is inline SVG, nothing is fetched")


def write_report(run_dirs: Sequence[str | Path], output: str | Path) -> int:
    """Render and write atomically; returns the size in bytes."""
    text = render_report(run_dirs)
    atomic_write_text(Path(output), text)
    return len(text.encode("utf-8"))
