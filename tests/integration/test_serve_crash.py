"""kill -9 of a real ``tao serve`` process under load: every request that got a 200 is in the table after restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai

from opentao.serve.log import decode_segment, read_rows
from opentao.testing import free_port

TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def start_server(model: Path, serve_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([*TAO, "serve", "--model", str(model), "--dir", str(serve_dir), "--port", str(port),
                             "--max-wait-ms", "2", "--no-auth"], stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("server did not start")


def load_until_killed(port: int, proc: subprocess.Popen, kill_after: int, clients: int = 4) -> dict[str, str]:
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=30)
        j = 0
        while not stop.is_set() and j < 500:
            try:
                r = c.chat.completions.create(model="tao", max_tokens=3,
                                              messages=[{"role": "user", "content": f"c{i} r{j}"}])
            except openai.APIError:
                return  # the server is gone
            with lock:
                acked[r.id] = r.choices[0].message.content
            j += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while len(acked) < kill_after and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # mid-load: requests are in flight, the WAL is being appended
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    return acked


def test_kill_9_during_load_loses_no_acknowledged_row(tmp_path, tiny_model_dir):
    serve_dir, port, log_path = tmp_path / "serve", free_port(), tmp_path / "server.log"
    proc = start_server(tiny_model_dir, serve_dir, port, log_path)
    acked = load_until_killed(port, proc, kill_after=40)
    assert len(acked) >= 40
    wal = list((serve_dir / "wal").glob("wal-*.jsonl"))
    assert wal, "killed: the rows are still in the WAL"
    torn = sum(decode_segment(p.read_bytes())[1] for p in wal)
    before = {r["request_id"]: r for r in read_rows(serve_dir)}
    assert set(acked) <= set(before), f"{len(set(acked) - set(before))} acknowledged rows lost"

    # restart: recovery compacts the WAL into Parquet; then a clean stop
    proc = start_server(tiny_model_dir, serve_dir, port, log_path)
    r = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="tao", max_tokens=3, messages=[{"role": "user", "content": "after restart"}])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-2000:]
    assert not list((serve_dir / "wal").glob("wal-*.jsonl")), "recovered and compacted"
    rows = read_rows(serve_dir)
    by_id = {row["request_id"]: row for row in rows}
    assert set(acked) | {r.id} <= set(by_id)
    assert all(by_id[rid]["response"] == text and by_id[rid]["status"] == 200 for rid, text in acked.items())
    assert len(rows) == len(before) + 1, "no row duplicated, none invented"
    seqs = [row["seq"] for row in rows]
    assert seqs == sorted(set(seqs)) and by_id[r.id]["seq"] == seqs[-1]
    print(f"\nkill -9 after {len(acked)} acknowledged requests: {len(before)} rows on disk "
          f"({len(before) - len(acked)} logged but not acknowledged), {torn} torn WAL line(s) skipped, 0 lost")
