"""Read-only views of a run directory: DuckDB SQL over its tables, and one prompt's candidates with their scores.

:func:`open_tables` loads every table the run has (``prompts``, ``candidates``, ``scores``, ``train_examples``,
``eval_results``, ``integrity``, ``decisions``; absent ones are left out) into an in-memory DuckDB database and
then turns DuckDB's external access off and locks its configuration: SQL given to ``tao inspect`` can read
those tables but cannot read or write any file, so inspecting a run never changes it. A table is small next to
memory here (a run holds thousands of rows, not millions); loading it whole is what buys that guarantee.

:func:`prompt_view` is the data behind ``tao inspect RUN --prompt ID``: the prompt, each candidate with every
scorer's score, the combined reward, and whether training used it (chosen, or rejected for DPO).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from opentao.errors import TaoError

VIEW_TABLES = ("prompts", "candidates", "scores", "train_examples", "eval_results", "integrity", "decisions")


def table_files(run_dir: str | Path) -> dict[str, list[Path]]:
    """Each table of :data:`VIEW_TABLES` that has parts in ``run_dir/tables`` → its part files."""
    root = Path(run_dir)
    if not root.is_dir():
        raise TaoError(f"no run directory at {root}")
    out = {}
    for name in VIEW_TABLES:
        files = sorted((root / "tables" / name).glob("part-*.parquet"))
        if files:
            out[name] = files
    return out


def open_tables(run_dir: str | Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """An in-memory DuckDB connection holding the run's tables (see the module docstring); and their names."""
    files = table_files(run_dir)
    con = duckdb.connect(":memory:")
    try:
        for name, parts in files.items():
            file_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in parts)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet([{file_list}], union_by_name = true)")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con, list(files)


def run_sql(run_dir: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Column names and rows of ``sql`` over the run's tables. Bad SQL or an unknown table → :class:`TaoError`."""
    if not sql.strip():
        raise TaoError("empty SQL: pass a query, e.g. \"select count(*) from candidates\"")
    con, names = open_tables(run_dir)
    try:
        cur = con.execute(sql)
        if cur.description is None:
            return [], []
        return [c[0] for c in cur.description], cur.fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaoError(f"SQL failed: {first} (tables in {run_dir}: {', '.join(names) or 'none'})") from None
    finally:
        con.close()


@dataclass
class CandidateView:
    candidate_id: str
    strategy: str
    temperature: float
    num_tokens: int
    response: str
    answer: str
    scores: dict[str, float | None]
    combined: float | None
    trained: str  # "chosen" | "rejected" | ""


@dataclass
class PromptView:
    prompt_id: str
    round: int
    messages: list[dict[str, str]]
    scorers: list[str]
    candidates: list[CandidateView] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)


def _rows(con, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def prompt_view(run_dir: str | Path, prompt_id: str, round_: int | None = None) -> PromptView:
    """One prompt's candidates side by side with every scorer's score (latest round unless ``round_``)."""
    con, names = open_tables(run_dir)
    try:
        if "candidates" not in names:
            raise TaoError(f"{run_dir} has no candidates table: run 'tao generate' first")
        rounds = [r["round"] for r in _rows(con, "SELECT DISTINCT round FROM candidates WHERE prompt_id = ? "
                                                 "ORDER BY round", [prompt_id])]
        if not rounds:
            known = [r["prompt_id"] for r in _rows(con, "SELECT DISTINCT prompt_id FROM candidates", [])]
            close = difflib.get_close_matches(prompt_id, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f" ({len(known)} prompts have candidates)"
            raise TaoError(f"no prompt {prompt_id!r} in {run_dir}{hint}")
        if round_ is None:
            round_ = rounds[-1]
        elif round_ not in rounds:
            raise TaoError(f"prompt {prompt_id!r} has no candidates in round {round_} (rounds: "
                           f"{', '.join(map(str, rounds))})")
        messages: list[dict[str, str]] = []
        if "prompts" in names:
            got = _rows(con, "SELECT messages FROM prompts WHERE prompt_id = ? AND round = ?", [prompt_id, round_])
            messages = json.loads(got[0]["messages"]) if got else []
        cands = _rows(con, "SELECT candidate_id, strategy, temperature, num_tokens, response, answer FROM candidates "
                           "WHERE prompt_id = ? AND round = ?", [prompt_id, round_])
        scores: dict[str, dict[str, float | None]] = {}
        if "scores" in names:
            for r in _rows(con, "SELECT candidate_id, scorer, score FROM scores WHERE prompt_id = ? AND round = ?",
                           [prompt_id, round_]):
                scores.setdefault(r["candidate_id"], {})[r["scorer"]] = r["score"]
        trained: dict[str, str] = {}
        if "train_examples" in names:
            for r in _rows(con, "SELECT chosen_id, rejected_id FROM train_examples WHERE prompt_id = ? AND round = ?",
                           [prompt_id, round_]):
                if r["rejected_id"]:
                    trained.setdefault(r["rejected_id"], "rejected")
                if r["chosen_id"]:
                    trained[r["chosen_id"]] = "chosen"
    finally:
        con.close()
    scorer_names = sorted({s for per in scores.values() for s in per if s != "combined"})
    view = PromptView(prompt_id, round_, messages, scorer_names, rounds=rounds)
    for c in sorted(cands, key=lambda c: candidate_order(c["candidate_id"])):
        per = scores.get(c["candidate_id"], {})
        view.candidates.append(CandidateView(
            c["candidate_id"], c["strategy"], c["temperature"], c["num_tokens"], c["response"], c["answer"],
            {s: per.get(s) for s in scorer_names}, per.get("combined"), trained.get(c["candidate_id"], "")))
    return view


def candidate_order(candidate_id: str) -> tuple:
    """Sort key: ``pid#10`` after ``pid#9`` (the slot index numerically), other ids as text."""
    head, _, tail = candidate_id.rpartition("#")
    return (head, int(tail)) if tail.isdigit() else (candidate_id, -1)
