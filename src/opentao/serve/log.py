"""The inference table: every request the gateway answers, durable before the client gets its response.

Layout inside the serve (flywheel) directory::

    wal/wal-<segment>.jsonl               write-ahead log: one line per row, "<crc32 hex> <json>\\n", fsync'd
    tables/inference/part-<segment>.parquet  compacted segments (atomic tmp + rename), query with DuckDB

Write path. ``InferenceLog.append(row)`` hands the row to one writer thread and returns a future. The writer
drains everything queued (group commit), writes the lines, ``fsync``\\s once, and only then resolves the futures:
the server acknowledges a request after its future resolves, so every 200 the client saw is on disk. A failed
write fails those futures (the client gets a 500, not a silent drop). A segment is rotated after
``segment_rows`` rows or ``segment_seconds`` and compacted into a Parquet part named after its segment number;
the segment file is deleted only after the part is renamed into place and that rename is made durable (an
fsync of the part directory), so a crash between the two leaves both and the next start just deletes the
segment (the part is keyed by segment, so compaction is idempotent).

A row is encoded when it is appended, in the caller's thread: a row that cannot be encoded (a lone surrogate,
a value JSON cannot hold) fails only its own future and never joins a group commit. A failed write (disk full,
I/O error) leaves no trace of its rows: the segment is truncated back to the last committed byte, and if even
that fails, the segment is compacted only up to that byte, so a row whose client got a 500 never reaches the
table.

Recovery. On open, leftover segments (after a crash or ``kill -9``) are compacted. A line is accepted only if
it ends with a newline and its CRC matches; a torn last line (the process died mid-write, so that request was
never acknowledged) is skipped and counted, never parsed into a row.

Order. ``seq = segment * 10**9 + line`` increases with write order across restarts (segment numbers continue
from the largest on disk). Readers list WAL segments *before* Parquet parts, so a segment compacted between the
two listings is seen twice (deduplicated by request id) rather than missed — which makes "every row with
``seq`` up to the largest one read" a consistent cut-off for the flywheel.

An optional Delta Lake sink (``deltalake``, an extra) appends each compacted part to a Delta table with an
app-transaction version equal to the segment number, so a re-sync after a crash never appends a part twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from opentao.errors import TaoError
from opentao.records import arrow_schema
from opentao.serve.durable import fsync_dir
from opentao.store import atomic_write_bytes

log = logging.getLogger(__name__)

SEQ_STRIDE = 10**9
@dataclass
class InferenceRow:
    """One row of the inference table (what :func:`normalize_row` fills in for a missing value: the default)."""

    seq: int = 0
    request_id: str = ""
    time: float = 0.0  # unix seconds when the request arrived
    key_id: str = ""
    model_version: str = ""
    endpoint: str = ""  # chat.completions | completions
    messages: str = ""  # JSON list of {role, content}
    params: str = ""  # JSON: temperature, max_tokens, n, stop, seed, stream (+ top_logprobs for chat)
    response: str = ""  # text of the first choice
    choices: str = ""  # JSON list of {text, finish_reason}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    status: int = 0
    error: str = ""
    metadata: str = ""  # JSON: the request's metadata and user fields
    redacted: bool = False


SCHEMA = arrow_schema(InferenceRow)
COLUMNS = tuple(SCHEMA.names)
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(InferenceRow)}


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Exactly the table's columns, JSON columns as text, missing values as their defaults."""
    out = {}
    for name in COLUMNS:
        value = row.get(name, _DEFAULTS[name])
        if name in ("messages", "params", "choices", "metadata") and not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        out[name] = value
    return out


def encode_line(row: dict[str, Any]) -> bytes:
    body = json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_segment(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Valid rows of a WAL segment and the number of lines skipped (torn or corrupt)."""
    rows, bad = [], 0
    lines = data.split(b"\n")
    # the piece after the last newline is an unfinished write (empty when the file ends with a newline)
    if lines and lines[-1] != b"":
        bad += 1
    for line in lines[:-1]:
        crc, _, body = line.partition(b" ")
        try:
            if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
                raise ValueError("crc mismatch")
            rows.append(json.loads(body))
        except ValueError:
            bad += 1
    return rows, bad


def _exclusive_lock(path: Path):
    """One writer per directory: a second server on the same directory would interleave segment numbers."""
    import fcntl

    fh = open(path, "a")  # noqa: SIM115  (held for the writer's lifetime; the OS drops it if we are killed)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise TaoError(f"another server is already writing the inference log in {path.parent}") from None
    return fh


def _segment_of(path: Path) -> int:
    return int(path.stem.split("-")[1])


class InferenceLog:
    """Durable, append-only inference table (WAL + Parquet parts) with one writer thread."""

    def __init__(self, root: str | Path, *, segment_rows: int = 5000, segment_seconds: float = 60.0,
                 delta_uri: str | None = None):
        self.root = Path(root)
        self.wal_dir = self.root / "wal"
        self.part_dir = self.root / "tables" / "inference"
        self.segment_rows = segment_rows
        self.segment_seconds = segment_seconds
        self.delta = DeltaSink(delta_uri) if delta_uri else None
        self.stats = {"rows": 0, "fsyncs": 0, "recovered_rows": 0, "skipped_lines": 0, "write_errors": 0,
                      "rejected_rows": 0}
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._fh = None
        self._lock = None
        self._segment = 0
        self._lines = 0
        self._committed = 0  # bytes of the open segment known to be on disk (fsync'd)
        self._opened_at = 0.0

    # --- lifecycle --------------------------------------------------------------------------------------
    def lock(self) -> InferenceLog:
        """Become the directory's one writer now (``TaoError`` if another server is); ``start`` does it too."""
        if self._lock is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = _exclusive_lock(self.root / ".serve.lock")
        return self

    def start(self) -> InferenceLog:
        self.lock()
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.part_dir.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._open_segment(self._next_segment())
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Flush what is queued, compact the open segment, stop the writer."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        self._lock.close()
        self._lock = None

    def recover(self) -> int:
        """Compact every leftover WAL segment (after a crash) into its Parquet part. Returns rows recovered."""
        total = 0
        for seg in sorted(self.wal_dir.glob("wal-*.jsonl")):
            total += self._compact(_segment_of(seg))
        self.stats["recovered_rows"] += total
        self._sync_delta()
        return total

    # --- writing -----------------------------------------------------------------------------------------
    def append(self, row: dict[str, Any]) -> Future:
        """Queue a row; the future resolves (to its seq) once the row is fsync'd, or fails with the write error.

        A row that cannot be encoded fails its future at once (``ValueError``) and is never queued."""
        if self._thread is None:
            raise RuntimeError("InferenceLog.start() was not called")
        fut: Future = Future()
        try:
            norm = normalize_row(row)
            encode_line(norm)  # the writer encodes it again with its seq; this one must not fail a group commit
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            self.stats["rejected_rows"] += 1
            fut.set_exception(ValueError(f"row {row.get('request_id', '?')!r} cannot be logged: {exc}"[:500]))
            return fut
        self._queue.put((norm, fut))
        return fut

    def _next_segment(self) -> int:
        segs = [_segment_of(p) for p in (*self.wal_dir.glob("wal-*.jsonl"), *self.part_dir.glob("part-*.parquet"))]
        return max(segs, default=0) + 1

    def _wal_path(self, segment: int) -> Path:
        return self.wal_dir / f"wal-{segment:08d}.jsonl"

    def _part_path(self, segment: int) -> Path:
        return self.part_dir / f"part-{segment:08d}.parquet"

    def _open_segment(self, segment: int) -> None:
        self._segment, self._lines, self._committed, self._opened_at = segment, 0, 0, time.monotonic()
        self._fh = open(self._wal_path(segment), "ab", buffering=0)  # noqa: SIM115  (the writer thread's)
        fsync_dir(self.wal_dir)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                item = ()
            batch = []
            while item is not None:
                if item:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            if batch:
                self._write(batch)
            if self._lines and (stop or self._lines >= self.segment_rows
                                or time.monotonic() - self._opened_at >= self.segment_seconds):
                self._rotate(reopen=not stop)
        if self._fh is not None:
            self._fh.close()
            if self._lines == 0:
                self._wal_path(self._segment).unlink(missing_ok=True)

    def _write(self, batch: list[tuple[dict, Future]]) -> None:
        data, kept = bytearray(), []
        for row, fut in batch:  # checked at append; a row that still cannot be encoded fails alone
            row["seq"] = self._segment * SEQ_STRIDE + self._lines + len(kept)
            try:
                data += encode_line(row)
            except (TypeError, ValueError) as exc:
                self.stats["rejected_rows"] += 1
                fut.set_exception(ValueError(f"row cannot be logged: {exc}"[:500]))
                continue
            kept.append((row, fut))
        batch = kept
        if not batch:
            return
        try:
            if self._fh is None:
                raise OSError("no WAL segment is open (an earlier I/O error)")
            view = memoryview(data)
            while view:  # unbuffered: a short write is retried, a failed one leaves nothing in a buffer
                view = view[self._fh.write(view):]
            os.fsync(self._fh.fileno())
        except BaseException as exc:  # disk full, I/O error: every waiting request fails loudly
            self.stats["write_errors"] += 1
            log.error("inference log write failed: %s", exc)
            self._recover_handle()  # first: once a client hears of the failure, its row is already gone
            for _, fut in batch:
                fut.set_exception(exc)
            return
        self._lines += len(batch)
        self._committed += len(data)
        self.stats["rows"] += len(batch)
        self.stats["fsyncs"] += 1
        for row, fut in batch:
            fut.set_result(row["seq"])

    def _recover_handle(self) -> None:
        """After a failed write the segment may hold (part of) the failed rows: cut it back to its committed
        bytes (or, if that fails too, compact only those), then start a new segment."""
        limit: int | None = self._committed
        try:
            if self._fh is not None:
                os.ftruncate(self._fh.fileno(), self._committed)
                os.fsync(self._fh.fileno())
                limit = None  # the file is its committed prefix again
        except (OSError, AttributeError, ValueError) as exc:
            log.error("cannot truncate WAL segment %d after a failed write (%s): compacting its committed %d "
                      "bytes only", self._segment, exc, self._committed)
        try:
            if self._fh is not None:
                self._fh.close()
        except OSError:
            pass
        self._fh = None
        self._rotate(reopen=True, limit=limit)

    def _open_next(self, segment: int) -> None:
        try:
            self._open_segment(segment)
        except OSError as exc:  # no handle: the next append fails (loudly) and tries again
            self._fh = None
            log.error("cannot open WAL segment %d: %s", segment, exc)

    def _rotate(self, reopen: bool, limit: int | None = None) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh = None
        done = self._segment
        try:
            self._compact(done, limit=limit)
            self._sync_delta()
        except Exception as exc:  # the segment stays on disk and is compacted at the next start
            log.error("compacting WAL segment %d failed (kept for the next start): %s", done, exc)
        if reopen:
            self._open_next(done + 1)

    def _compact(self, segment: int, limit: int | None = None) -> int:
        """WAL segment → Parquet part (only its first ``limit`` bytes when given), then the segment goes."""
        wal, part = self._wal_path(segment), self._part_path(segment)
        if not wal.is_file():
            return 0
        n = 0
        if not part.is_file():
            data = wal.read_bytes()
            rows, bad = decode_segment(data if limit is None else data[:limit])
            if bad:
                self.stats["skipped_lines"] += bad
                log.warning("WAL segment %d: skipped %d torn or corrupt line(s)", segment, bad)
            if rows:
                tbl = pa.Table.from_pylist([normalize_row(r) for r in rows], schema=SCHEMA)
                buf = pa.BufferOutputStream()
                pq.write_table(tbl, buf)
                atomic_write_bytes(part, buf.getvalue().to_pybytes())
                fsync_dir(self.part_dir)  # the part's rename is durable before the WAL that backs it goes
                n = len(rows)
        wal.unlink()
        fsync_dir(self.wal_dir)
        return n

    def _sync_delta(self) -> None:
        if self.delta is None:
            return
        try:
            self.delta.sync(sorted(self.part_dir.glob("part-*.parquet")))
        except Exception as exc:  # the Parquet parts are the source of truth; the next sync retries
            log.error("Delta Lake sync failed (will retry): %s", exc)


class DeltaSink:
    """Append compacted parts to a Delta table, exactly once per segment (app-transaction versions)."""

    APP_ID = "opentao-inference"

    def __init__(self, uri: str):
        try:
            import deltalake  # noqa: F401
        except ImportError:
            raise TaoError("the Delta Lake sink needs the 'deltalake' package: pip install 'opentao[delta]'") from None
        self.uri = uri

    def done_version(self) -> int:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri).transaction_version(self.APP_ID) or 0
        except TableNotFoundError:
            return 0

    def sync(self, parts: list[Path]) -> int:
        from deltalake import CommitProperties, Transaction, write_deltalake

        done, written = self.done_version(), 0
        for part in parts:
            seg = _segment_of(part)
            if seg <= done:
                continue
            props = CommitProperties(app_transactions=[Transaction(app_id=self.APP_ID, version=seg)])
            write_deltalake(self.uri, pq.read_table(part), mode="append", commit_properties=props)
            written += 1
        return written


def read_rows(root: str | Path, *, since_seq: int = -1) -> list[dict[str, Any]]:
    """Every logged row with ``seq > since_seq`` in write order: live WAL segments first, then Parquet parts."""
    root = Path(root)
    by_id: dict[str, dict[str, Any]] = {}
    for wal in sorted((root / "wal").glob("wal-*.jsonl")):
        try:
            data = wal.read_bytes()
        except FileNotFoundError:  # compacted meanwhile: its part is read below
            continue
        for row in decode_segment(data)[0]:
            by_id.setdefault(row["request_id"], normalize_row(row))
    for part in sorted((root / "tables" / "inference").glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            by_id.setdefault(row["request_id"], row)
    return sorted((r for r in by_id.values() if r["seq"] > since_seq), key=lambda r: r["seq"])
