"""Hard bounds of the SQL sandbox: time and peak memory of hostile queries, and the cost of a normal query.

    PYTHONPATH=src python benchmarks/sql_bounds.py [--src DIR] [--label after] [--out FILE]

Each case runs ``opentao.sqlsafe.run_sql_readonly`` (``opentao.score.sql`` in older checkouts; from ``--src``, default this checkout's ``src``) in a
fresh Python process against a small synthetic database (4 customers, 5 orders, a 2,000-row table ``t``), with
the default 2 s limit, and records wall time, ``ok``, the error, the peak RSS of that process (``ru_maxrss``) and
the peak of the summed RSS of it and its child processes (the query worker), sampled every 10 ms. A runner that has not finished after ``--case-timeout`` s (60) is killed
and recorded as such. For safety on a shared machine each runner's address space is capped at 6 GiB
(``RLIMIT_AS``), so "before" figures for the memory bomb stop there at worst.

``normal`` times 200 calls of an ordinary query in one process (after a warm-up call): the per-query latency.
Results are merged into ``--out`` (``benchmarks/results/sql_bounds.json``) under ``--label``, so running it
once on the old code (``--src /tmp/old/src --label before``) and once here (``--label after``) fills both.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "printf_1e9": "SELECT printf('%.*c', 1e9, 'x')",
    "quadratic_instr": ("SELECT instr(replace(hex(zeroblob(400000)), '0', 'a') || 'b', "
                        "replace(hex(zeroblob(200000)), '0', 'a') || 'b')"),
    "zeroblob_1001_rows": ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1001) "
                           "SELECT zeroblob(9999999) FROM c"),
    "recursive_cte_runaway": ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                              "WHERE x < 1000000000000) SELECT count(*) FROM c"),
    "cross_join": "SELECT count(*) FROM t a, t b, t c",
}
NORMAL = "SELECT c.name, sum(o.total) FROM customer c JOIN orders o ON o.customer_id = c.id GROUP BY c.name"

RUNNER = r"""
import json, os, resource, sys, threading, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0

def tree(pid):
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                for c in fh.read().split():
                    out += tree(int(c))
    except OSError:
        pass
    return out

peak = {"tree": 0}
def sample():
    while True:
        peak["tree"] = max(peak["tree"], sum(rss_kib(p) for p in tree(os.getpid())))
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
try:
    from opentao.sqlsafe import run_sql_readonly
except ImportError:  # a checkout from before opentao.sqlsafe
    from opentao.score.sql import run_sql_readonly
db, sql, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
if repeat > 1:
    run_sql_readonly(db, sql)
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    res = run_sql_readonly(db, sql)
    times.append(time.perf_counter() - t0)
try:
    from opentao.sqlsafe import sandbox as sql_sandbox
except ImportError:
    try:
        from opentao.score import sql_sandbox
    except ImportError:
        sql_sandbox = None
if sql_sandbox is not None:
    sql_sandbox.shutdown()
kib = lambda who: resource.getrusage(who).ru_maxrss
print(json.dumps({"times": times, "ok": res.ok, "error": res.error[:200], "rows": len(res.rows),
                  "rss_self_mib": kib(resource.RUSAGE_SELF) / 1024,
                  "rss_tree_peak_mib": peak["tree"] / 1024}))
"""


def make_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);
        CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
        INSERT INTO customer VALUES (1,'Ann','France'),(2,'Bob','Spain'),(3,'Cy','France'),(4,'Di','Peru');
        INSERT INTO orders VALUES (1,1,10.0),(2,1,5.5),(3,2,7.25),(4,3,1.0),(5,4,3.0);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO t
        SELECT x, 'v' || x FROM c;
        """
    )
    con.commit()
    con.close()
    return path


def run_case(src: str, db: Path, sql: str, repeat: int, case_timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": src}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(db), sql, str(repeat)], env=env,
                              capture_output=True, text=True, timeout=case_timeout)
    except subprocess.TimeoutExpired:
        return {"killed_after_s": case_timeout, "ok": None}
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"runner_failed": proc.returncode, "stderr": proc.stderr[-300:], "wall_s": round(wall, 2)}
    out = json.loads(lines[-1])
    times = sorted(out.pop("times"))
    if repeat == 1:
        out["time_s"] = round(times[0], 3)
    else:
        out["per_query_ms_p50"] = round(1000 * times[len(times) // 2], 3)
        out["per_query_ms_mean"] = round(1000 * sum(times) / len(times), 3)
        out["per_query_ms_p99"] = round(1000 * times[int(len(times) * 0.99) - 1], 3)
    out["rss_self_mib"] = round(out["rss_self_mib"], 1)
    out["rss_tree_peak_mib"] = round(out["rss_tree_peak_mib"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(ROOT / "src"))
    ap.add_argument("--label", default="after")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sql_bounds.json"))
    ap.add_argument("--case-timeout", type=float, default=60.0)
    ap.add_argument("--only", nargs="*", help="case names to run (default: all, then normal)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        db = make_db(Path(tmp) / "bench.sqlite")
        section = dict(results.get(args.label, {}))
        names = args.only or [*CASES, "normal"]
        for name in names:
            sql, repeat = (NORMAL, 200) if name == "normal" else (CASES[name], 1)
            section[name] = {"sql": sql, **run_case(args.src, db, sql, repeat, args.case_timeout)}
            print(name, json.dumps(section[name]), flush=True)
    results[args.label] = section
    results["limit_s"] = 2.0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
