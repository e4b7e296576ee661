"""The ``tao inspect`` and ``tao report`` verbs: look at a finished (or running) run directory.

:func:`register` adds them to the app. Model-written text is printed as plain text, never as rich markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from opentao.cli.app import out
from opentao.errors import TaoError

MAX_CELL = 400  # characters of one cell shown by `tao inspect RUN SQL`


def _cell(v) -> Text:
    s = "NULL" if v is None else str(v)
    return Text(s if len(s) <= MAX_CELL else s[:MAX_CELL] + "…")


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def sql_table(columns: list[str], rows: list[tuple], limit: int) -> Table:
    tbl = Table(show_lines=False, caption=f"{len(rows)} row(s)" + (f", first {limit} shown" if len(rows) > limit
                                                                     else ""))
    for c in columns:
        tbl.add_column(Text(c), overflow="fold")
    for r in rows[:limit]:
        tbl.add_row(*(_cell(v) for v in r))
    return tbl


def prompt_table(view) -> Table:
    """One prompt's candidates side by side: every scorer's score, the combined reward, trained on or not."""
    tbl = Table(title=Text(f"prompt {view.prompt_id}, round {view.round}: {len(view.candidates)} candidates"),
                show_lines=True)
    for col in ("#", "strategy", "T", "tokens"):
        tbl.add_column(Text(col), no_wrap=True)
    tbl.add_column(Text("response"), overflow="fold", ratio=1, min_width=24)
    for col in (*view.scorers, "combined", "trained"):
        tbl.add_column(Text(col), overflow="fold", max_width=14)
    for c in view.candidates:
        tbl.add_row(Text(c.candidate_id.rpartition("#")[2] or c.candidate_id), Text(c.strategy),
                    f"{c.temperature:g}", str(c.num_tokens), Text(c.response),
                    *(_fmt(c.scores[s]) for s in view.scorers), _fmt(c.combined), Text(c.trained or "–"))
    return tbl


def inspect(
    run_dir: Annotated[str, typer.Argument(help="run directory")],
    sql: Annotated[Optional[str], typer.Argument(help="DuckDB SQL over the run's tables (prompts, candidates, "
                                                      "scores, train_examples, eval_results, integrity, "
                                                      "decisions)")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="show one prompt's candidates and "
                                                                   "scores")] = None,
    round_: Annotated[Optional[int], typer.Option("--round", "-r", help="round (default: the latest)")] = None,
    limit: Annotated[int, typer.Option(help="rows to print")] = 50,
) -> None:
    """Query a run with SQL (read-only), or show one prompt's candidates side by side with their scores."""
    from opentao.runview import prompt_view, run_sql, table_files

    if (sql is None) == (prompt is None):
        names = ", ".join(table_files(run_dir)) or "none"
        raise TaoError(f"give either SQL or --prompt ID (tables in {run_dir}: {names})")
    if prompt is not None:
        view = prompt_view(run_dir, prompt, round_)
        user = [m["content"] for m in view.messages if m.get("role") == "user"]
        if user:
            question = user[-1].strip().splitlines()[-1]
            out.print(Text(f"question (last line of the prompt): {question}"))
        out.print(prompt_table(view))
        return
    columns, rows = run_sql(run_dir, sql)
    out.print(sql_table(columns, rows, limit) if columns else "ok (no result set)")


def report(
    run_dirs: Annotated[list[str], typer.Argument(help="one run directory, or several to compare")],
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write")] = Path("report.html"),
) -> None:
    """One self-contained HTML page (plots embedded, no network) about one run, or comparing several."""
    from opentao.report.page import write_report

    for d in run_dirs:
        if not (Path(d) / "tables").is_dir():
            raise TaoError(f"no run directory with tables at {d}")
    size = write_report(run_dirs, output)
    out.print(f"report of {len(run_dirs)} run(s) → {output} ({size / 1024:.0f} KiB)")


def register(app: typer.Typer) -> None:
    """Add ``inspect`` and ``report`` to ``app``."""
    app.command()(inspect)
    app.command()(report)
