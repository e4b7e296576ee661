"""Regenerate the screenshots under docs/: a run's report, a comparison of two runs, the flywheel dashboard.

    PYTHONPATH=src python docs/make_screenshots.py --run RUN [--compare RUN_A RUN_B] [--serve-dir DIR]
        [--prompt ID] [--out docs]

- ``--run``: ``tao report RUN`` → ``OUT/report-<name>.png`` (the HTML is written to a temporary folder); with ``--prompt``
  also ``tao inspect RUN --prompt ID`` → ``OUT/inspect-<name>-<ID>.txt``.
- ``--compare``: ``tao report A B`` → ``OUT/report-compare.png``.
- ``--serve-dir``: a serve/flywheel directory (e.g. after ``examples/flywheel_demo.sh``, whose server has
  stopped): the gateway is started in-process on loopback with the directory's served model, a temporary API
  key is added (and revoked afterwards), and ``/dashboard`` → ``OUT/dashboard.png``.

Headless Debian Chromium through Selenium (``tests/browser.py``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import browser  # noqa: E402


def shoot_file(html: Path, png: Path) -> None:
    d = browser.chrome()
    try:
        d.get(html.resolve().as_uri())
        outside = [u for u in browser.requested_urls(d) if not u.startswith(("file://", "data:"))]
        assert not outside, outside
        browser.screenshot(d, png)
    finally:
        d.quit()
    print(f"{png} ({png.stat().st_size // 1024} KiB)")


def report(runs: list[str], html: Path, png: Path) -> None:
    from opentao.report.page import write_report

    write_report(runs, html)
    shoot_file(html, png)


def inspect_prompt(run: str, prompt: str, out: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    res = subprocess.run([sys.executable, "-c", "from opentao.cli import main; main()", "inspect", run, "--prompt",
                          prompt], capture_output=True, text=True, env=env, check=True)
    out.write_text(f"$ tao inspect {Path(run).name} --prompt {prompt}\n" + res.stdout)
    print(out)


def dashboard(serve_dir: str, png: Path) -> None:
    from opentao.serve.app import create_app
    from opentao.serve.keys import add_key, revoke_key
    from opentao.testing import serve_in_thread

    key_id = f"screenshot-{os.getpid()}"
    key = add_key(serve_dir, key_id)
    try:
        with serve_in_thread(create_app(serve_dir=serve_dir)) as url:
            d = browser.chrome()
            try:
                browser.set_headers(d, {"Authorization": f"Bearer {key}"})
                d.get(f"{url}/dashboard")
                outside = [u for u in browser.requested_urls(d) if not u.startswith((url + "/", "data:"))]
                assert not outside, outside
                browser.screenshot(d, png)
            finally:
                d.quit()
    finally:
        revoke_key(serve_dir, key_id)
    print(f"{png} ({png.stat().st_size // 1024} KiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run")
    ap.add_argument("--prompt")
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--serve-dir")
    ap.add_argument("--out", default=str(REPO / "docs"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if browser.missing():
        sys.exit(f"error: {browser.missing()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            name = Path(args.run).name
            report([args.run], Path(tmp) / f"report-{name}.html", out / f"report-{name}.png")
            if args.prompt:
                inspect_prompt(args.run, args.prompt, out / f"inspect-{name}-{args.prompt}.txt")
        if args.compare:
            report(args.compare, Path(tmp) / "compare.html", out / "report-compare.png")
    if args.serve_dir:
        dashboard(args.serve_dir, out / "dashboard.png")


if __name__ == "__main__":
    main()
