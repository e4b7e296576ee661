"""The gateway under an unlucky operator: a full disk under the inference log, SIGTERM with requests in flight,
a second server on a locked directory."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from opentao.serve.log import InferenceLog, read_rows
from opentao.testing import free_port

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]
CHAT = [{"role": "user", "content": "Say something."}]


def _append_all(log: InferenceLog, n: int, size: int, prefix: str) -> tuple[set[str], set[str]]:
    """Append n rows from 8 threads at once (so they share group commits); ids that were acked / that failed."""
    ok, failed, lock = set(), set(), threading.Lock()

    def one(i: int) -> None:
        rid = f"{prefix}{i}"
        try:
            log.append({"request_id": rid, "status": 200, "response": "x" * size}).result(timeout=30)
            with lock:
                ok.add(rid)
        except OSError:
            with lock:
                failed.add(rid)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    return ok, failed


def _check_no_failed_rows(root: Path, ok: set[str], failed: set[str]) -> None:
    ids = {r["request_id"] for r in read_rows(root)}
    assert ok <= ids, "every acknowledged row is in the table"
    assert not (ids & failed), f"{len(ids & failed)} rows whose writes failed are in the table"


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_enospc_on_a_real_full_tmpfs_leaves_no_failed_row_behind(small_tmpfs):
    root = small_tmpfs / "serve"
    log = InferenceLog(root, segment_rows=10**6, segment_seconds=3600).start()
    filler = small_tmpfs / "filler"
    ok1, failed1 = _append_all(log, 40, 2000, "a")  # room for these
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 48 * 1024))  # ~48 KiB left: the next rows fill the disk
    ok2, failed2 = _append_all(log, 200, 2000, "b")
    assert not failed1 and failed2, "the disk filled up"
    assert log.stats["write_errors"] >= 1
    _check_no_failed_rows(root, ok1 | ok2, failed2)  # while serving (WAL + parts)
    filler.unlink()
    ok3, failed3 = _append_all(log, 20, 100, "c")  # space again: served again
    assert not failed3
    log.close()  # compaction
    _check_no_failed_rows(root, ok1 | ok2 | ok3, failed2)
    InferenceLog(root).start().close()  # a restart's recovery
    _check_no_failed_rows(root, ok1 | ok2 | ok3, failed2)
    assert not list((root / "tables" / "inference").glob(".part-*")), "no temporary part left behind"


class _ShortThenFull:
    """A WAL handle whose write stores half of what it is given, then fails with ENOSPC (a short write)."""

    def __init__(self, fh):
        self.fh, self.calls = fh, 0

    def write(self, data) -> int:
        self.calls += 1
        if self.calls == 1:
            return self.fh.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self) -> int:
        return self.fh.fileno()

    def close(self) -> None:
        self.fh.close()


def test_enospc_after_a_short_write_is_truncated_away_injected(tmp_path):
    """The same as on tmpfs, by injecting OSError(ENOSPC) at the write call (runs without root)."""
    log = InferenceLog(tmp_path, segment_rows=10**6, segment_seconds=3600).start()
    ok1, _ = _append_all(log, 10, 300, "a")
    log._fh = _ShortThenFull(log._fh)  # the writer thread is idle between batches
    failed = set()
    futures = {f"b{i}": log.append({"request_id": f"b{i}", "status": 200, "response": "y" * 300}) for i in range(10)}
    for rid, fut in futures.items():
        try:
            fut.result(timeout=10)
            ok1.add(rid)
        except OSError:
            failed.add(rid)
    assert failed, "the injected write failed"
    _check_no_failed_rows(tmp_path, ok1, failed)
    log.close()
    _check_no_failed_rows(tmp_path, ok1, failed)


def _start_server(model: Path, serve_dir: Path, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TAO, "serve", "--model", str(model), "--dir", str(serve_dir), "--port", str(port),
                             *extra], stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_healthy(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log_path.read_text()
        time.sleep(0.2)
    raise TimeoutError(log_path.read_text())


def test_sigterm_with_requests_in_flight_exits_within_the_deadline_and_a_second_server_is_refused(
        tmp_path, tiny_model_dir):
    serve_dir, port, log_path = tmp_path / "serve", free_port(), tmp_path / "server.log"
    proc = _start_server(tiny_model_dir, serve_dir, port, log_path, "--no-auth", "--max-batch", "2",
                         "--shutdown-timeout", "2")
    try:
        _wait_healthy(proc, port, log_path)
        # a second server on the same directory: one error line, exit 2, and it never says "serving"
        second = subprocess.run([*TAO, "serve", "--model", str(tiny_model_dir), "--dir", str(serve_dir), "--port",
                                 str(free_port()), "--no-auth"], capture_output=True, text=True, timeout=180)
        assert second.returncode == 2, second.stderr
        assert "error:" in second.stderr and "already" in second.stderr and "serving" not in second.stdout

        def ask(i: int) -> int | str:
            try:
                return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
                    "model": "tao", "max_tokens": 1000, "temperature": 1.0,
                    "messages": [{"role": "user", "content": f"long answer {i}"}]}).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(ask, i) for i in range(12)]
            time.sleep(2.0)  # one batch of 2 generating, the rest queued
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            exit_s = time.monotonic() - t0
            statuses = [f.result() for f in futures]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "serving base" in text and "auth OFF (--no-auth)" in text
    assert exit_s < 2 + 5 + 3, f"exited {exit_s:.1f} s after SIGTERM (deadline 2 s)"
    assert all(s in (200, 503) for s in statuses), statuses
    assert statuses.count(503) >= 1, "work past the deadline was failed, not waited for"
    rows = read_rows(serve_dir)
    assert sorted(r["status"] for r in rows if r["endpoint"] == "chat.completions") == sorted(statuses), \
        "every answer, 503s included, is in the table"


def test_the_part_rename_is_made_durable_before_its_wal_segment_is_unlinked(tmp_path, monkeypatch):
    import opentao.serve.durable
    import opentao.serve.log
    from opentao.serve.keys import add_key, revoke_key

    events: list[tuple[str, str]] = []
    real_fsync_dir, real_unlink = opentao.serve.durable.fsync_dir, Path.unlink

    def fsync_dir(path):
        events.append(("fsync", str(Path(path))))
        real_fsync_dir(path)

    def unlink(self, *args, **kwargs):
        events.append(("unlink", str(self)))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(opentao.serve.log, "fsync_dir", fsync_dir)
    monkeypatch.setattr(opentao.serve.durable, "fsync_dir", fsync_dir)
    monkeypatch.setattr(Path, "unlink", unlink)
    log = InferenceLog(tmp_path / "serve").start()
    log.append({"request_id": "r0", "status": 200}).result(timeout=10)
    log.close()
    wal = str(tmp_path / "serve" / "wal" / "wal-00000001.jsonl")
    parts = str(tmp_path / "serve" / "tables" / "inference")
    assert events.index(("fsync", parts)) < events.index(("unlink", wal))
    assert [r["request_id"] for r in read_rows(tmp_path / "serve")] == ["r0"]
    events.clear()
    add_key(tmp_path / "keys", "k")
    revoke_key(tmp_path / "keys", "k")  # a revoked key must not come back after a power loss
    assert events.count(("fsync", str(tmp_path / "keys"))) == 2
