"""Execution of untrusted, already-checked SQL in a killable worker process with hard limits.

:func:`opentao.sqlsafe.readonly.run_sql_readonly` checks the statement (sqlglot) and then calls :func:`execute`, which
runs it in a persistent worker process (``python -S`` running this file: the standard library only, no site
packages) and waits for the answer. The SQLite-level defences live in the worker: a read-only connection
(``mode=ro``, ``immutable=1`` for a WAL database that has no live ``-wal``/``-shm`` pair, so reading never creates
those files), ``PRAGMA query_only`` and ``trusted_schema=OFF``, no attached databases, bounded value and SQL
lengths, in-memory temp storage, the authorizer, and a progress handler that interrupts after ``timeout_s``.

A single SQL function call (``printf('%.*c', 1e9, 'x')``, a quadratic ``instr()``) never reaches the progress
handler, and a result can be far larger than its row count suggests. So the worker also runs under

* ``RLIMIT_AS`` (``max_memory_bytes``, default 1 GiB of address space): allocation fails → an SQLite
  ``out of memory`` / Python ``MemoryError`` result;
* ``RLIMIT_CPU``: before each query the soft limit is set to the CPU time used so far + ``ceil(timeout_s) + 1``
  s; SIGXCPU ends a worker whose query spins in C;
* ``RLIMIT_FSIZE`` 0 (SIGXFSZ ignored): it cannot write any file;
* a result-bytes cap (``max_result_bytes``, default 16 MiB, counted while fetching: text and blob lengths, 8 per
  number), besides the row cap;

and the parent kills it (SIGKILL) when no answer came ``timeout_s + KILL_GRACE_S`` after the query was sent. A
killed or dead worker is replaced on the next call; healthy workers are reused (a small idle pool, one worker
per concurrent caller), so a normal query costs one pipe round trip, not a process start.

The worker speaks length-prefixed pickles over its stdin/stdout. The parent unpickles replies with an
unpickler that resolves no globals, so a reply can only hold plain values (tuples, lists, str, bytes, numbers).
"""

from __future__ import annotations

import atexit
import io
import math
import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["KILL_GRACE_S", "MAX_MEMORY_BYTES", "MAX_RESULT_BYTES", "db_uri", "execute", "shutdown"]

KILL_GRACE_S = 0.5
MAX_MEMORY_BYTES = 1 << 30
MAX_RESULT_BYTES = 16 << 20
MAX_VALUE_BYTES = 10_000_000
MAX_SQL_CHARS = 100_000

_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}
_DENIED_FUNCTIONS = {
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "fts5", "zipfile", "zipfile_cds",
    "sqlar_compress", "sqlar_uncompress", "lsmode", "fsdir", "sqlite_dbpage", "sqlite_dbdata",
    "sqlite_dbptr", "shell_add_schema", "shell_module_schema", "shell_escape_crnl", "shell_idquote",
    "shell_putsnl", "eval", "sha3_query", "sqlite_drop_column", "sqlite_rename_column",
    "sqlite_rename_table", "sqlite_rename_test", "sqlite_rename_quotefix",
}
_DENIED_TABLES = {"fsdir", "zipfile", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr", "sqlar"}
_HEADER = struct.Struct("!Q")


# --------------------------------------------------------------------------------------------- the worker
def _authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and (arg1 or "").lower() in _DENIED_TABLES:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def db_uri(db_path: str | Path) -> str:
    """A read-only URI for ``db_path``; ``immutable=1`` for a WAL-mode file without a live -wal/-shm pair.

    SQLite opens a WAL database read-only only if its ``-shm``/``-wal`` exist or can be created, so ``mode=ro``
    alone creates them next to the file. ``immutable=1`` reads the main file without locking or creating
    anything; when a writer is active (both files exist) plain ``mode=ro`` is used and creates nothing either.
    A ``-wal`` left without its ``-shm`` by a crashed writer is ignored in the immutable case (its frames are
    not read).
    """
    path = Path(db_path).resolve()
    uri = path.as_uri() + "?mode=ro"
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return uri
    is_wal = len(header) == 20 and header[18] == 2 and header[19] == 2
    live = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    return uri + "&immutable=1" if is_wal and not live else uri


def _short(e: BaseException) -> str:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return msg[:200]


def _value_bytes(v: object) -> int:
    return len(v) if isinstance(v, (str, bytes)) else 8


def _run(uri: str, sql: str, timeout_s: float, max_rows: int, max_result_bytes: int) -> tuple:
    """(ok, columns, rows, truncated, error) of one query, in the worker."""
    deadline = time.monotonic() + timeout_s
    timed_out = False

    def progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1
        return 0

    conn = None
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=min(timeout_s, 1.0))
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS)
        conn.set_authorizer(_authorizer)
        conn.set_progress_handler(progress, 1000)
        cur = conn.execute(sql)
        columns = [d[0] for d in (cur.description or [])]
        rows, size = [], 0
        for row in cur:
            if len(rows) == max_rows:
                return True, columns, rows, True, ""
            size += sum(_value_bytes(v) for v in row)
            if size > max_result_bytes:
                return False, [], [], False, f"result too large: more than {max_result_bytes} bytes"
            rows.append(tuple(row))
        return True, columns, rows, False, ""
    except Exception as e:  # noqa: BLE001 - untrusted SQL: every failure becomes a result
        if timed_out:
            return False, [], [], False, f"timeout: query ran longer than {timeout_s:g} s"
        return False, [], [], False, f"{type(e).__name__}: {_short(e)}"
    finally:
        if conn is not None:
            conn.close()


def _read_msg(stream) -> object | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    return pickle.loads(stream.read(_HEADER.unpack(head)[0]))


def _write_msg(stream, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _worker_main(max_memory_bytes: int) -> None:
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; EOF on stdin ends the worker
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        msg = _read_msg(stdin)
        if msg is None:
            return
        uri, sql, timeout_s, max_rows, max_result_bytes = msg
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = used.ru_utime + used.ru_stime
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu) + math.ceil(timeout_s) + 1, resource.RLIM_INFINITY))
        try:
            reply = _run(uri, sql, timeout_s, max_rows, max_result_bytes)
            _write_msg(stdout, reply)
        except MemoryError:
            _write_msg(stdout, (False, [], [], False, "MemoryError: the query ran out of memory"))


# --------------------------------------------------------------------------------------------- the parent
class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ARG002 - a reply holds plain values only
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


class _WorkerGone(Exception):
    pass


class _Worker:
    def __init__(self, max_memory_bytes: int):
        self.max_memory_bytes = max_memory_bytes
        self.proc = subprocess.Popen(
            [sys.executable, "-E", "-s", "-S", __file__, str(max_memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
            cwd="/", env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = io.BytesIO()
        while buf.tell() < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(n - buf.tell(), 1 << 20))
            if not chunk:
                raise _WorkerGone
            buf.write(chunk)
        return buf.getvalue()

    def ask(self, msg: tuple, wait_s: float, max_reply_bytes: int) -> tuple:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(_HEADER.pack(len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise _WorkerGone from e
        deadline = time.monotonic() + wait_s
        size = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))[0]
        if size > max_reply_bytes:
            raise _WorkerGone
        return _NoGlobals(io.BytesIO(self._read_exact(size, deadline))).load()

    def kill(self, wait_s: float = 0.0) -> str:
        """SIGKILL (after ``wait_s`` for it to end by itself) and reap; how the worker ended ("" when it was
        still running)."""
        try:
            code = self.proc.wait(wait_s) if wait_s else self.proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if code is None or code >= 0:
            return ""
        return {signal.SIGXCPU: "CPU time limit", signal.SIGKILL: "killed"}.get(-code, f"signal {-code}")


_LOCK = threading.Lock()
_IDLE: list[_Worker] = []
_OWNER = os.getpid()
_MAX_IDLE = 8


def _checkout(max_memory_bytes: int) -> _Worker:
    global _OWNER
    with _LOCK:
        if os.getpid() != _OWNER:  # a forked child must not share its parent's workers
            _IDLE.clear()
            _OWNER = os.getpid()
        while _IDLE:
            w = _IDLE.pop()
            if w.alive() and w.max_memory_bytes == max_memory_bytes:
                return w
            w.kill()
    return _Worker(max_memory_bytes)


def _checkin(w: _Worker) -> None:
    with _LOCK:
        if os.getpid() == _OWNER and w.alive() and len(_IDLE) < _MAX_IDLE:
            _IDLE.append(w)
            return
    w.kill()


@atexit.register
def shutdown() -> None:
    """Stop the idle workers (they also exit on their own when this process's end closes their stdin)."""
    with _LOCK:
        idle = list(_IDLE)
        _IDLE.clear()
    for w in idle:
        w.kill()


def execute(db_path: str | Path, sql: str, *, timeout_s: float, max_rows: int,
            max_result_bytes: int = MAX_RESULT_BYTES, max_memory_bytes: int = MAX_MEMORY_BYTES) -> tuple:
    """Run one checked query in a worker: ``(ok, columns, rows, truncated, error)``; never raises on bad SQL.

    Returns within ``timeout_s + KILL_GRACE_S`` (plus a worker start when none is idle, ~30 ms)."""
    w = _checkout(int(max_memory_bytes))
    msg = (db_uri(db_path), sql, float(timeout_s), int(max_rows), int(max_result_bytes))
    try:
        reply = w.ask(msg, timeout_s + KILL_GRACE_S, 2 * max_result_bytes + (1 << 20) + 64 * max_rows)
    except TimeoutError:
        w.kill()
        return False, [], [], False, f"timeout: query ran longer than {timeout_s:g} s (worker killed)"
    except (_WorkerGone, pickle.UnpicklingError, EOFError, struct.error):
        how = w.kill(wait_s=0.5)  # its stdout closed: it is exiting, find out why
        if how == "CPU time limit":
            return False, [], [], False, f"timeout: query used more than {math.ceil(timeout_s) + 1} s of CPU"
        return False, [], [], False, f"query worker died ({how or 'no reply'})"
    _checkin(w)
    ok, columns, rows, truncated, error = reply
    return bool(ok), list(columns), [tuple(r) for r in rows], bool(truncated), str(error)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]) if len(sys.argv) > 1 else MAX_MEMORY_BYTES)
