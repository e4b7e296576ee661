"""Headless Chromium from Debian (``chromium``, ``chromium-driver``) driven by Selenium, for the browser tests and
``docs/make_screenshots.py``. Nothing downloads a browser: the driver and binary paths are given explicitly, so
Selenium Manager is never consulted. Every request the page makes is read back from Chrome's performance log.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file() and not shutil.which(Path(path).name):
            return f"{path} is absent (apt-get install chromium chromium-driver)"
    return None


def chrome(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def set_headers(driver, headers: dict[str, str]) -> None:
    """Send these headers with every request of the page (how the tests pass the dashboard's API key)."""
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since the last call (Network.requestWillBeSent in the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot(driver, path: str | Path, width: int = 1400) -> None:
    """A PNG of the whole page (beyond the viewport)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(int(height), 16000), "scale": 1}})
    Path(path).write_bytes(base64.b64decode(shot["data"]))
