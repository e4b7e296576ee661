"""Attack and fault probes against the gateway on loopback (issue 16), before → after a fix.

Each probe builds its own ``create_app`` with the tiny random Llama on a fresh serve directory, served by
``serve_in_thread`` on 127.0.0.1; every loop is bounded and every request has a timeout. Only APIs that exist on
both sides of the fix are used, so the same script measures the old code (``PYTHONPATH=<old checkout>/src``) and
the new one. Results go under the ``--label`` key of ``benchmarks/results/serve_attacks.json`` (other labels in
that file are kept), with the commit of the measured source tree.

    PYTHONPATH=src python benchmarks/serve_attacks.py --label after
    PYTHONPATH=/tmp/old/src python benchmarks/serve_attacks.py --label before --commit 5c5f4dc

Probes: ``stop_20k`` (an innocent request sent 1 s after a request with a 20,000-character stop string: the
attack's status and time, the innocent one's latency vs its idle baseline); ``surrogate`` (80 innocent requests
concurrent with 40 carrying a lone surrogate, in the prompt or in ``user``: innocent non-200s, log write
errors, rows logged);
``huge_int`` (a 5000-digit ``max_tokens``); ``last_key_revoked`` (a keyless request after the only key is
revoked); ``queue`` (300 concurrent requests at the default settings: statuses, Retry-After, worst latency);
``hang_up`` (3 clients that disconnect while queued: sequences generated for them); ``enospc`` (rows on a full
1 MiB tmpfs whose writes failed but that are in the table; needs root, else skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHAT = [{"role": "user", "content": "Say something."}]


def post(url: str, body: dict | bytes, timeout: float = 120, headers: dict | None = None) -> tuple[int | str, float]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    t = time.perf_counter()
    try:
        r = httpx.post(url + "/v1/chat/completions", content=content, timeout=timeout,
                       headers={"content-type": "application/json", **(headers or {})})
        status: int | str = r.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, round(time.perf_counter() - t, 3)


def probe_stop_20k(model: str, work: Path) -> dict:
    from opentao.serve.app import create_app
    from opentao.testing import serve_in_thread

    innocent = {"model": "tao", "messages": CHAT, "max_tokens": 8, "temperature": 0}
    with serve_in_thread(create_app(model, serve_dir=work / "stop")) as url:
        post(url, innocent)
        baseline = min(post(url, innocent)[1] for _ in range(3))
        with ThreadPoolExecutor(2) as pool:
            attack = pool.submit(post, url, {**innocent, "stop": "x" * 20_000}, 300)
            time.sleep(1.0)
            victim = pool.submit(post, url, innocent, 300)
            (a_status, a_s), (v_status, v_s) = attack.result(), victim.result()
    return {"attack_status": a_status, "attack_s": a_s, "innocent_status": v_status, "innocent_latency_s": v_s,
            "innocent_idle_baseline_s": baseline}


def probe_surrogate(model: str, work: Path) -> dict:
    from opentao.serve.app import create_app
    from opentao.serve.log import read_rows
    from opentao.testing import serve_in_thread

    # in the prompt (reaches the tokenizer) and in the `user` field (only the log sees it: such a request is
    # generated in the same batch as innocent ones and logged in the same group commit)
    bad = [b'{"model": "tao", "max_tokens": 4, "messages": [{"role": "user", "content": "hi \\ud800"}]}',
           b'{"model": "tao", "max_tokens": 4, "user": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}']
    app = create_app(model, serve_dir=work / "surrogate")
    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(24) as pool:
            attacks = [pool.submit(post, url, bad[i % 2]) for i in range(40)]
            good = [pool.submit(post, url, {"model": "tao", "max_tokens": 4,
                                            "messages": [{"role": "user", "content": f"innocent {i}"}]})
                    for i in range(80)]
            attacks, good = [f.result()[0] for f in attacks], [f.result()[0] for f in good]
        stats = dict(app.state.gateway.log.stats)
    rows = read_rows(work / "surrogate")
    return {"innocent_sent": 80, "innocent_not_200": sum(s != 200 for s in good),
            "attack_statuses": {str(s): attacks.count(s) for s in sorted(set(attacks), key=str)},
            "log_write_errors": stats.get("write_errors"), "rows_logged": len(rows), "requests_sent": 120,
            "log_direct": _surrogate_rows_in_the_log(work / "surrogate-log")}


def _surrogate_rows_in_the_log(root: Path) -> dict:
    """The log alone: 80 good rows and 40 with a lone surrogate appended from 8 threads at once (group commits)."""
    from opentao.serve.log import InferenceLog

    log = InferenceLog(root).start()

    def one(i: int) -> str:
        bad = i % 3 == 2
        try:
            log.append({"request_id": f"r{i}", "status": 200, "response": "\ud800" if bad else "ok"}).result(30)
            return "bad-ok" if bad else "good-ok"
        except Exception:
            return "bad-failed" if bad else "good-failed"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(120)))
    log.close()
    return {"good_rows": outcomes.count("good-ok") + outcomes.count("good-failed"),
            "good_rows_failed": outcomes.count("good-failed"), "bad_rows_failed": outcomes.count("bad-failed")}


def probe_huge_int(model: str, work: Path) -> dict:
    from opentao.serve.app import create_app
    from opentao.testing import serve_in_thread

    body = b'{"model": "tao", "messages": [{"role": "user", "content": "x"}], "max_tokens": ' + b"9" * 5000 + b"}"
    with serve_in_thread(create_app(model, serve_dir=work / "int")) as url:
        return {"status": post(url, body)[0]}


def probe_last_key(model: str, work: Path) -> dict:
    from opentao.serve.app import create_app
    from opentao.serve.keys import add_key, revoke_key
    from opentao.serve.log import read_rows
    from opentao.testing import serve_in_thread

    d = work / "keys"
    key = add_key(d, "only")
    body = {"model": "tao", "messages": CHAT, "max_tokens": 4}
    with serve_in_thread(create_app(model, serve_dir=d)) as url:
        with_key = post(url, body, headers={"authorization": f"Bearer {key}"})[0]
        revoke_key(d, "only")
        keyless = post(url, body)[0]
    return {"with_key_status": with_key, "keyless_after_revoke_status": keyless,
            "logged_key_ids": [r["key_id"] for r in read_rows(d)]}


def probe_queue(model: str, work: Path) -> dict:
    from opentao.serve.app import create_app
    from opentao.testing import serve_in_thread

    async def flood(url: str) -> list[tuple[int | str, str | None, float]]:
        limits = httpx.Limits(max_connections=400)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            async def one(i: int):
                t = time.perf_counter()
                try:
                    r = await client.post(url + "/v1/chat/completions", json={
                        "model": "tao", "max_tokens": 8, "messages": [{"role": "user", "content": f"flood {i}"}]})
                    return r.status_code, r.headers.get("retry-after"), time.perf_counter() - t
                except httpx.HTTPError as exc:
                    return type(exc).__name__, None, time.perf_counter() - t
            return await asyncio.gather(*(one(i) for i in range(300)))

    with serve_in_thread(create_app(model, serve_dir=work / "queue")) as url:
        t0 = time.perf_counter()
        out = asyncio.run(flood(url))
        wall = time.perf_counter() - t0
    statuses = [s for s, _, _ in out]
    served = [lat for s, _, lat in out if s == 200]
    return {"sent": 300, "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses), key=str)},
            "with_retry_after": sum(ra is not None for _, ra, _ in out),
            "max_latency_served_s": round(max(served), 2) if served else None, "wall_s": round(wall, 2)}


def probe_hang_up(model: str, work: Path) -> dict:
    from opentao.serve.app import ServeSettings, create_app
    from opentao.testing import serve_in_thread

    def hang_up(url: str, i: int) -> None:
        u = urlparse(url)
        data = json.dumps({"model": "tao", "max_tokens": 200, "messages": [
            {"role": "user", "content": f"gone {i}"}]}).encode()
        with socket.create_connection((u.hostname, u.port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: %d\r\n\r\n%s" % (len(data), data))
            time.sleep(0.1)

    app = create_app(model, serve_dir=work / "hangup", settings=ServeSettings(max_batch=1))
    long = {"model": "tao", "max_tokens": 400, "temperature": 1.0, "messages": CHAT}
    with serve_in_thread(app) as url:
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(post, url, long)
            time.sleep(0.5)
            for i in range(3):
                hang_up(url, i)
            busy.result()
        deadline = time.monotonic() + 120
        while app.state.gateway.batcher.queued and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        while time.monotonic() < deadline:  # until the generate thread is idle (a batch may be running)
            before = httpx.get(url + "/metrics").text
            time.sleep(1.0)
            if before.count("tao_batch_sequences_count") and before == httpx.get(url + "/metrics").text:
                break
        metrics = httpx.get(url + "/metrics").text
    calls = [line for line in metrics.splitlines() if line.startswith("tao_batch_sequences_count")]
    generated = int(float(calls[0].split()[-1])) if calls else 0
    return {"hung_up_clients": 3, "generate_calls": generated, "generated_for_hung_up": max(0, generated - 1)}


def probe_enospc(work: Path) -> dict:
    from opentao.serve.log import InferenceLog, read_rows

    mnt = work / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        return {"skipped": "cannot mount a tmpfs (needs root)"}
    try:
        root = mnt / "serve"
        log = InferenceLog(root, segment_rows=10**6, segment_seconds=3600).start()
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - 48 * 1024))
        ok, failed, lock = set(), set(), threading.Lock()

        def one(i: int) -> None:
            try:
                log.append({"request_id": f"r{i}", "status": 200, "response": "x" * 2000}).result(timeout=30)
                with lock:
                    ok.add(f"r{i}")
            except OSError:
                with lock:
                    failed.add(f"r{i}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(200)))
        (mnt / "filler").unlink()
        log.close()
        InferenceLog(root).start().close()  # a restart's recovery
        ids = {r["request_id"] for r in read_rows(root)}
        return {"mode": "real 1 MiB tmpfs", "rows_sent": 200, "acked": len(ok), "failed": len(failed),
                "failed_rows_in_table": len(ids & failed), "acked_rows_missing": len(ok - ids)}
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True, help="e.g. before / after")
    ap.add_argument("--src", default=str(ROOT), help="the source tree measured (for its commit)")
    ap.add_argument("--commit", default=None, help="the commit measured, when --src is not a git checkout")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_attacks.json"))
    ap.add_argument("--only", default=None, help="comma-separated probe names")
    args = ap.parse_args()

    import opentao
    from opentao.testing import tiny_random_llama

    work = Path(tempfile.mkdtemp(prefix="serve-attacks-"))
    model = str(tiny_random_llama(work / "tiny-llama"))
    probes = {"stop_20k": lambda: probe_stop_20k(model, work), "surrogate": lambda: probe_surrogate(model, work),
              "huge_int": lambda: probe_huge_int(model, work), "last_key_revoked": lambda: probe_last_key(model, work),
              "queue": lambda: probe_queue(model, work), "hang_up": lambda: probe_hang_up(model, work),
              "enospc": lambda: probe_enospc(work)}
    wanted = args.only.split(",") if args.only else list(probes)
    commit = args.commit or subprocess.run(["git", "-C", args.src, "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
    result = {"commit": commit, "opentao": str(Path(opentao.__file__).parent), "cpu_count": os.cpu_count(),
              "model": "tiny random Llama (2 layers, 1.6M params)", "probes": {}}
    for name in wanted:
        t = time.perf_counter()
        result["probes"][name] = {**probes[name](), "probe_s": round(time.perf_counter() - t, 1)}
        print(name, json.dumps(result["probes"][name]), flush=True)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {}
    if args.only and args.label in data:  # a partial rerun replaces only its probes
        result["probes"] = {**data[args.label]["probes"], **result["probes"]}
    data[args.label] = result
    data["note"] = ("labels are source trees measured by this script on the same machine; 'before' is the code of "
                    "issue 16's probe (5c5f4dc), 'after' the fix; the machine's 2 cores are shared with others")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
