"""``GET /dashboard``: a read-only HTML page about the deployment, behind the same API key as the API.

Sections: the served version, flywheel rounds (what each exported and what was decided), promotion decisions
with their gate scores, traffic per model version, latency percentiles and error rates (from the inference
table: compacted Parquet parts plus the live WAL, via :func:`opentao.serve.log.read_rows`), and the requests
this process has seen (its in-memory counters, which also count the 401s the table never logs).

What it shows is aggregates only: no API keys, key hashes or key ids, no logged message or response text,
no model paths. A request without a valid key gets the API's 401 JSON error and nothing else. The page is the
report's self-contained HTML (inline SVG, no script) sent with a ``default-src 'none'`` Content-Security-Policy
and ``Cache-Control: no-store``. The numbers come from the pure functions :func:`traffic_stats` and
:func:`round_rows`; :func:`render_dashboard` only lays them out.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from opentao.serve.schemas import error_body

PERCENTILES = (50, 90, 99)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def traffic_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model version (in order of first use): requests, errors (status ≠ 200) and their rate, the status
    counts, completion tokens, and latency percentiles of the answered (200) requests."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.get("seq", 0)):
        by[r.get("model_version") or "?"].append(r)
    out = []
    for version, rs in by.items():
        ok = [r for r in rs if r.get("status") == 200]
        statuses: dict[str, int] = defaultdict(int)
        for r in rs:
            statuses[str(r.get("status"))] += 1
        lat = [float(r.get("latency_ms") or 0.0) for r in ok]
        out.append({"version": version, "requests": len(rs), "ok": len(ok), "errors": len(rs) - len(ok),
                    "error_rate": (len(rs) - len(ok)) / len(rs), "statuses": dict(sorted(statuses.items())),
                    "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in ok),
                    **{f"p{q}_ms": percentile(lat, q) for q in PERCENTILES}})
    return out


def round_rows(root: Path, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per flywheel round folder: its export counts and the decision recorded for it (if any)."""
    by_round = {d["round"]: d for d in decisions if d.get("kind") == "round"}
    out = []
    for rdir in sorted((root / "rounds").glob("round-*"), key=lambda p: int(p.name.split("-")[1])
                       if p.name.split("-")[1].isdigit() else 0):
        try:
            n = int(rdir.name.split("-")[1])
            stats = json.loads((rdir / "export.json").read_text()).get("stats", {})
        except (OSError, ValueError, IndexError):
            continue
        d = by_round.get(n, {})
        out.append({"round": n, "logged_rows": stats.get("rows"), "selected": stats.get("selected"),
                    "train": stats.get("train"), "heldout": stats.get("heldout"),
                    "promoted": d.get("promoted"), "served_after": d.get("served_after")})
    return out


def _requests_since_start(metrics) -> list[tuple[str, str, int]]:
    with metrics._lock:
        series = dict(metrics.counters.get("tao_requests_total", {}))
    rows = []
    for key, v in sorted(series.items()):
        labels = dict(key)
        rows.append((labels.get("endpoint", ""), labels.get("status", ""), int(v)))
    return rows


def render_dashboard(root: Path | None, gateway) -> str:
    from opentao.flywheel.decisions import read_decisions
    from opentao.report import page as H  # matplotlib loads on the first page view, not at server start
    from opentao.report import plots as P
    from opentao.serve.host import read_pointer
    from opentao.serve.log import read_rows

    sections = []
    current = gateway.host.current.version
    pointer = read_pointer(root) if root is not None else None
    history = [(h.get("version"), h.get("reason")) for h in (pointer or {}).get("history", [])]
    served = H.table(("served version", "model swaps since start", "queued sequences"),
                     [(current, gateway.host.swaps, gateway.batcher.queued)])
    if history:
        served += "<p>pointer history (oldest first)</p>" + H.table(("version", "reason"), history)
    sections.append(H.section("served", "Served model", [("now", served)]))

    decisions = read_decisions(root) if root is not None else []
    rounds = round_rows(root, decisions) if root is not None else []
    sections.append(H.section("rounds", "Flywheel rounds", [("rounds", H.table(
        ("round", "logged rows", "prompts", "train", "held out", "promoted", "serving after"),
        [(r["round"], r["logged_rows"], r["selected"], r["train"], r["heldout"], r["promoted"], r["served_after"])
         for r in rounds]) if rounds else H.muted("no flywheel round yet"))]))

    body = H.muted("no decision yet")
    if decisions:
        gated = [d for d in decisions if d.get("current_score") is not None and d.get("kind") == "round"]
        body = ""
        if gated:
            labels = [f"round {d['round']}" for d in gated]
            body += H.figure("gate-scores", P.grouped_bars(labels, {
                "current": [d["current_score"] for d in gated], "candidate": [d["candidate_score"] for d in gated]},
                "gate score"), "the gate's score of the served model vs the candidate, per round")
        body += H.table(("time (UTC)", "kind", "round", "current", "candidate", "current score", "candidate score",
                         "margin", "evaluator", "n", "promoted", "serving after", "reason"),
                        [(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d["time"] or 0)), d["kind"], d["round"],
                          d["current_version"], d["candidate_version"], d["current_score"], d["candidate_score"],
                          d["margin"], d["evaluator"], d["n_eval"], d["promoted"], d["served_after"], d["reason"])
                         for d in decisions])
    sections.append(H.section("decisions", "Promotion decisions", [("decisions", body)]))

    rows = read_rows(root) if root is not None else []
    traffic = traffic_stats(rows)
    if traffic:
        versions = [t["version"] for t in traffic]
        tbl = H.table(("model version", "requests", "answered (200)", "errors", "error rate", "statuses",
                       "completion tokens"),
                      [(t["version"], t["requests"], t["ok"], t["errors"], H.pct(t["error_rate"]),
                        ", ".join(f"{k}: {v}" for k, v in t["statuses"].items()), t["completion_tokens"])
                       for t in traffic])
        traffic_html = H.figure("traffic", P.bar_plot(versions, [t["requests"] for t in traffic], "requests"),
                                "logged requests per model version") + tbl
        lat = {f"p{q}": [t[f"p{q}_ms"] or 0.0 for t in traffic] for q in PERCENTILES}
        latency_html = H.figure("latency", P.grouped_bars(versions, lat, "latency (ms)"),
                                "latency percentiles of answered requests, logging included") + H.table(
            ("model version", *(f"p{q} ms" for q in PERCENTILES)),
            [(t["version"], *(t[f"p{q}_ms"] for q in PERCENTILES)) for t in traffic])
        errors_html = H.figure("errors", P.bar_plot(versions, [t["error_rate"] for t in traffic], "error rate"),
                               "share of logged requests not answered with 200")
    else:
        traffic_html = latency_html = errors_html = H.muted("no logged traffic")
    sections.append(H.section("traffic", "Traffic per model version", [("inference table", traffic_html)]))
    sections.append(H.section("latency", "Latency percentiles", [("inference table", latency_html)]))
    live = _requests_since_start(gateway.metrics)
    sections.append(H.section("errors", "Error rates", [
        ("inference table", errors_html),
        ("this process since start (401s included)", H.table(("endpoint", "status", "requests"), live)
         if live else H.muted("no request since start"))]))
    return H.document("opentao gateway dashboard", "".join(sections),
                      f"rendered {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; read-only")


def add_dashboard(app: FastAPI, gateway, root: Path | None) -> None:
    """Mount ``GET /dashboard`` on the gateway app (left out of the OpenAPI spec: it is a page, not an API)."""

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        _key_id, refused = gateway._authenticate(request)  # the API's own check: its 401 (or 503), nothing more
        if refused is not None:
            return JSONResponse(error_body(refused.message, refused.type, refused.code, refused.param),
                                status_code=refused.status)
        from opentao.report.page import CSP

        text = await asyncio.to_thread(render_dashboard, root, gateway)
        return HTMLResponse(text, headers={"content-security-policy": CSP, "cache-control": "no-store",
                                           "x-content-type-options": "nosniff"})
