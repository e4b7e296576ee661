"""Run directory: the only channel between stages.

Layout::

    RUN/config.yaml                      resolved config of the last invocation
    RUN/tables/<table>/part-<key>.parquet one file per finished batch of work
    RUN/models/round-<r>/                 tuned model of round r
    RUN/summary/<name>.json               small JSON summaries (eval metrics, stage stats)

A table is the union of its part files. Each part is written to a temporary file and renamed into place, so a
stage killed mid-way leaves only whole parts: it loses at most the batch in flight and never a torn table. A
stage re-run lists what is already done (by part key or by ids inside the parts) and skips it. Tables are
plain Parquet: ``duckdb -c "select * from 'RUN/tables/candidates/*.parquet'"`` works.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from opentao.errors import TaoError
from opentao.records import Row

TABLES = ("prompts", "candidates", "scores", "train_examples", "eval_results", "integrity")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask() is process-wide, so never toggle it while threads run


def _readable_tmp(directory: Path, name: str) -> tuple[int, str]:
    """A temporary file next to its final place, with the permissions an ordinary new file gets (mkstemp's
    are 0600, which would leave run tables unreadable to the rest of a team)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    os.chmod(tmp, 0o666 & ~_UMASK)
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _readable_tmp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def ensure_run_dir(path: str | Path, what: str = "run directory", *, create: bool = True) -> Path:
    """Prove ``path`` usable as a writable directory (a probe file made and removed), creating it when
    ``create`` (else the probe goes to its nearest existing ancestor and nothing is left behind); TaoError
    otherwise — a file in its place or above it, a read-only directory or file system, no permission."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise TaoError(f"{what} {p} is a file, not a directory")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise TaoError(f"{what} {p}: {parent} is a file, not a directory")
    target = p if create or p.is_dir() else next((a for a in p.absolute().parents if a.is_dir()), Path("/"))
    try:
        if create:
            p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TaoError(f"{what} {p} is not writable: {exc.strerror or exc}") from None
    return p


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- layout -------------------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / table

    def model_dir(self, round_: int) -> Path:
        return self.root / "models" / f"round-{round_}"

    def summary_path(self, name: str) -> Path:
        return self.root / "summary" / f"{name}.json"

    # --- parts --------------------------------------------------------------------------------------
    def part_path(self, table: str, key: str) -> Path:
        return self.table_dir(table) / f"part-{key}.parquet"

    def has_part(self, table: str, key: str) -> bool:
        return self.part_path(table, key).is_file()

    def write_part(self, table: str, key: str, rows: Iterable[Row], schema: pa.Schema) -> int:
        """Write one batch of rows as a whole part file (atomic). Returns the number of rows."""
        data = [r.to_row() for r in rows]
        tbl = pa.Table.from_pylist(data, schema=schema)
        path = self.part_path(table, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _readable_tmp(path.parent, path.name)
        os.close(fd)
        try:
            pq.write_table(tbl, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(data)

    def parts(self, table: str) -> list[Path]:
        d = self.table_dir(table)
        return sorted(d.glob("part-*.parquet")) if d.is_dir() else []

    # --- queries ------------------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run DuckDB SQL where each table name is available as a view over its parts."""
        con = duckdb.connect()
        try:
            for table in TABLES:
                files = self.parts(table)
                if files:
                    file_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{file_list}])")
            cur = con.execute(sql, params or [])
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        finally:
            con.close()

    def read(self, table: str, round_: int | None = None) -> list[dict[str, Any]]:
        """All rows of a table (optionally one round), in a stable order."""
        files = self.parts(table)
        if not files:
            return []
        rows: list[dict[str, Any]] = []
        for f in files:
            rows.extend(pq.read_table(f).to_pylist())
        if round_ is not None:
            rows = [r for r in rows if r.get("round") == round_]
        return rows

    def count(self, table: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.parts(table))

    def counts(self) -> dict[str, int]:
        return {t: self.count(t) for t in TABLES}

    # --- summaries ----------------------------------------------------------------------------------
    def write_summary(self, name: str, data: dict[str, Any]) -> None:
        atomic_write_text(self.summary_path(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def read_summary(self, name: str) -> dict[str, Any] | None:
        path = self.summary_path(name)
        return json.loads(path.read_text()) if path.is_file() else None
