"""Fuzz the gateway's OpenAPI spec with Schemathesis (bounded), on loopback, with the tiny random Llama.

Runs the server in this process (``serve_in_thread``), points ``schemathesis run`` at ``/openapi.json`` with all
checks, a small ``--max-examples`` and a time budget, then summarises the JSON report into
``benchmarks/results/serve_fuzz.json`` (operations, test cases, status codes seen, failures by check) and
checks that the server is still healthy afterwards.

    PYTHONPATH=src python benchmarks/serve_fuzz.py --max-examples 40 --max-time 300
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-examples", type=int, default=40)
    ap.add_argument("--max-time", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_fuzz.json"))
    args = ap.parse_args()
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(exe).exists():
        sys.exit("schemathesis is not installed: pip install 'opentao[fuzz]'")

    from opentao.serve.app import ServeSettings, create_app
    from opentao.serve.log import read_rows
    from opentao.testing import serve_in_thread, tiny_random_llama

    work = Path(tempfile.mkdtemp(prefix="serve-fuzz-"))
    model = tiny_random_llama(work / "tiny-llama")
    settings = ServeSettings(max_tokens_limit=32, default_max_tokens=16, max_body_bytes=200_000)
    report = work / "report"
    with serve_in_thread(create_app(str(model), serve_dir=work / "serve", settings=settings)) as url:
        cmd = [exe, "run", f"{url}/openapi.json", "--checks", "all", "--max-examples", str(args.max_examples),
               "--max-time", str(args.max_time), "--seed", str(args.seed), "--workers", "1",
               "--request-timeout", "60", "--report", "ndjson", "--report-dir", str(report), "--no-color",
               "--suppress-health-check", "all"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_time + 300,
                              cwd=work)  # schemathesis writes its cache into the working directory
        health = httpx.get(url + "/health").json()
        still_serving = httpx.post(url + "/v1/chat/completions", json={
            "model": "tao", "max_tokens": 4, "messages": [{"role": "user", "content": "still there?"}]}).status_code
    rows = read_rows(work / "serve")
    statuses = collections.Counter(str(r["status"]) for r in rows)
    by_endpoint = collections.Counter(r["endpoint"] for r in rows)
    out = proc.stdout
    failures = out[out.find("=== FAILURES ==="):out.find("=== SUMMARY ===")] if "=== FAILURES ===" in out else ""
    summary_text = out[out.find("=== SUMMARY ==="):] if "=== SUMMARY ===" in out else out[-3000:]
    summary = {
        "command": " ".join(cmd[1:]).replace(url, "http://127.0.0.1:PORT"),
        "schemathesis_exit_code": proc.returncode,
        "logged_requests": len(rows), "logged_by_endpoint": dict(by_endpoint), "logged_status_codes": dict(statuses),
        "server_errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
        "health_after": health, "valid_request_after_fuzzing": still_serving,
        "schemathesis_summary": [line for line in summary_text.splitlines() if line.strip()],
        "schemathesis_failures": [line[:300] for line in failures.splitlines() if line.strip()][:200],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(proc.stdout[-8000:])
    print(json.dumps({k: v for k, v in summary.items() if k != "schemathesis_failures"}, indent=2))


if __name__ == "__main__":
    main()
