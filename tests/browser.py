"""Headless Chromium for the viewer's tests and the README screenshot: Debian's `chromium` and
`chromium-driver`, driven by Selenium, with a fresh profile, no background traffic, every
host name unresolvable, and the browser's request log switched on."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "apt-get install chromium chromium-driver"


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why they cannot be used."""
    browser = os.environ.get("LESIONLOC_CHROMIUM") or next(
        (found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    driver = os.environ.get("LESIONLOC_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        return f"no {missing} on PATH ({INSTALL_HINT})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return browser, driver


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A Selenium driver of headless Chromium whose viewport is width x height pixels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="lesionloc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-extensions",
                 "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}",
                 # a request that escaped would find no host (but this machine's own web
                 # server, for pages served over HTTP); the log still records it
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        # the viewport itself (a window's size includes what the browser draws around a page)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call (the DevTools request log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_ready(driver: Any, timeout: float = 20.0) -> None:
    """Until the page says its pictures are decoded (body[data-ready])."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


def screenshot(driver: Any) -> Any:
    """The viewport as an RGB uint8 array (CSS pixel = device pixel at scale factor 1)."""
    import cv2
    import numpy as np

    png = np.frombuffer(driver.get_screenshot_as_png(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
