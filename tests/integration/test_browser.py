"""A real browser (headless Debian Chromium through Selenium) on `tao report`'s page from disk and on the
gateway's /dashboard from a loopback server: every section and plot is there, the injected candidate's
``<script>`` did not run, no request leaves the page, and a screenshot is saved."""

from __future__ import annotations

import httpx
import pytest

from opentao.flywheel import record_decision
from opentao.report.page import write_report
from opentao.serve.app import create_app
from opentao.serve.keys import add_key
from opentao.testing import EchoGenerator, serve_in_thread
from tests.helpers import browser
from tests.helpers.report_fixtures import make_run

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=f"no browser: {browser.missing()}")

REPORT_SECTIONS = ("scores", "agreement", "heldout", "quality", "training", "collapse", "candidates", "integrity",
                   "cost")
DASHBOARD_SECTIONS = ("served", "rounds", "decisions", "traffic", "latency", "errors")


@pytest.fixture(scope="module")
def driver():
    d = browser.chrome()
    d.set_page_load_timeout(120)
    yield d
    d.quit()


def _check_page(driver, sections, plots, allowed: tuple[str, ...]):
    for sid in sections:
        el = driver.find_element("id", sid)
        assert el.tag_name == "section" and el.is_displayed(), sid
    for plot in plots:
        svg = driver.find_element("css selector", f"figure[data-plot='{plot}'] svg")
        assert svg.size["width"] > 50 and svg.size["height"] > 50, plot
    urls = browser.requested_urls(driver)
    assert urls, "the performance log saw no request at all"
    outside = [u for u in urls if not u.startswith(allowed)]
    assert not outside, f"requests left the page: {outside}"


def test_report_from_disk(driver, tmp_path):
    run = make_run(tmp_path / "run")
    out = tmp_path / "report.html"
    write_report([run], out)
    browser.requested_urls(driver)  # drop earlier entries
    driver.get(out.as_uri())
    _check_page(driver, REPORT_SECTIONS, ("score-distributions", "scorer-agreement", "heldout", "quality-vs-k",
                                          "training-r1", "collapse", "wall-time"), ("file://", "data:"))
    assert driver.execute_script("return window.__pwned === undefined && document.scripts.length === 0")
    assert "<script>window.__pwned = 1</script>" in driver.find_element("id", "candidates").text
    shot = tmp_path / "report.png"
    browser.screenshot(driver, shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_dashboard_on_loopback(driver, tmp_path):
    root = tmp_path / "serve"
    key = add_key(root, "ops")
    record_decision(root, "round-00001", {
        "kind": "round", "round": 1, "promoted": False, "current_version": "base", "candidate_version": "round-1",
        "served_after": "base", "current_score": 0.4, "candidate_score": 0.38, "margin": 0.05, "evaluator": "reward",
        "n_eval": 4, "n_prompts": 8, "reason": "candidate -0.020 vs current, below the margin 0.05"})
    with serve_in_thread(create_app(EchoGenerator(), serve_dir=root)) as url:
        r = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                       json={"model": "tao", "messages": [{"role": "user", "content": "hello"}]})
        assert r.status_code == 200
        browser.set_headers(driver, {})
        driver.get(f"{url}/dashboard")
        assert "invalid_api_key" in driver.page_source and "<section" not in driver.page_source
        browser.set_headers(driver, {"Authorization": f"Bearer {key}"})
        browser.requested_urls(driver)
        driver.get(f"{url}/dashboard")
        _check_page(driver, DASHBOARD_SECTIONS, ("gate-scores", "traffic", "latency", "errors"), (url + "/", "data:"))
        shot = tmp_path / "dashboard.png"
        browser.screenshot(driver, shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
