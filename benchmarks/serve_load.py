"""Load test of ``tao serve`` on loopback: C concurrent ``openai`` clients × R requests each.

Starts a real server process (the tiny random Llama unless ``--model``), drives it with the official client,
stops it cleanly, then checks the inference table: every acknowledged request has exactly one row whose
response equals what the client received (0 lost rows). Writes ``benchmarks/results/serve_load.json``.

    PYTHONPATH=src python benchmarks/serve_load.py                  # 8 clients × 200 requests, max_tokens 8
    PYTHONPATH=src python benchmarks/serve_load.py --clients 2 --requests 20 --model bundled
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
TAO = [sys.executable, "-c", "from opentao.cli import main; main()"]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="per client")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--model", default=None, help="default: a tiny random Llama (built once in the temp dir)")
    ap.add_argument("--time-limit", type=float, default=900, help="seconds; the run stops early after this")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = ap.parse_args()

    from opentao.serve.log import read_rows
    from opentao.testing import free_port, tiny_random_llama

    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    model = args.model or str(tiny_random_llama(work / "tiny-llama"))
    port = free_port()
    serve_dir = work / "serve"
    proc = subprocess.Popen([*TAO, "serve", "--model", model, "--dir", str(serve_dir), "--port", str(port),
                             "--max-batch", str(args.max_batch), "--no-auth"], stdout=subprocess.DEVNULL,
                            stderr=open(work / "server.log", "wb"), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if proc.poll() is not None:
                sys.exit(f"server failed: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)

    acked: dict[str, str] = {}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.time_limit

    def client(i: int) -> None:
        c = openai.OpenAI(base_url=base + "/v1", api_key="load", max_retries=0, timeout=120)
        for j in range(args.requests):
            if time.monotonic() > deadline:
                return
            t = time.perf_counter()
            try:
                r = c.chat.completions.create(model="tao", max_tokens=args.max_tokens, temperature=0.7, messages=[
                    {"role": "user", "content": f"Client {i}, request {j}: name a colour."}])
            except openai.APIError as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
                acked[r.id] = r.choices[0].message.content

    t0, load_start = time.perf_counter(), os.getloadavg()[0]  # other jobs on the machine skew the figures
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    metrics = httpx.get(base + "/metrics").text
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)

    rows = read_rows(serve_dir)
    by_id = {r["request_id"]: r for r in rows}
    lost = [rid for rid in acked if rid not in by_id]
    mismatched = [rid for rid, text in acked.items() if rid in by_id and by_id[rid]["response"] != text]
    batch_sum = float(re.search(r"^tao_batch_sequences_sum (\S+)", metrics, re.M).group(1))
    batch_n = float(re.search(r"^tao_batch_sequences_count (\S+)", metrics, re.M).group(1))
    result = {
        "clients": args.clients, "requests_per_client": args.requests, "max_tokens": args.max_tokens,
        "model": "tiny random Llama (2 layers, 1.6M params)" if args.model is None else args.model,
        "sent": args.clients * args.requests, "acknowledged": len(acked), "errors": len(errors),
        "error_samples": errors[:5], "rows_in_table": len(rows), "rows_lost": len(lost),
        "rows_mismatched": len(mismatched), "wall_s": round(wall, 2),
        "throughput_rps": round(len(acked) / wall, 1),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1) if latencies else None,
        "mean_batch_sequences": round(batch_sum / batch_n, 2) if batch_n else None,
        "generate_calls": int(batch_n), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "loadavg_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "note": "server and clients share this machine's cores (and, here, other users' jobs)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if lost or mismatched:
        sys.exit(1)


if __name__ == "__main__":
    main()
