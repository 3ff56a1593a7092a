"""Headless Chromium through selenium: Debian's /usr/bin/chromium driven by Debian's
/usr/bin/chromedriver. Nothing is downloaded (Selenium Manager is kept offline).

conftest.py starts one per test session as the `browser` fixture; a test that uses it is
marked `browser` and skipped, with the reason, where chromium or chromedriver is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from trio_monitor.probes.browser.chromium import QUIET

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 30

FLAGS = (*QUIET, "--force-device-scale-factor=1")


def missing() -> str | None:
    """Why Chromium cannot run here, or None if it can."""
    if Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file():
        return None
    return (
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; .ci/run installs them)"
    )


@contextmanager
def start_chromium(home: Path) -> Iterator[Any]:
    """A selenium Chrome driver on a fresh profile under `home`, in light colour scheme."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - a broken test environment
        pytest.fail("selenium is not installed: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*FLAGS, f"--user-data-dir={home / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = {**os.environ, "HOME": str(home), "SE_OFFLINE": "true"}
    service = Service(
        executable_path=CHROMEDRIVER, env=env, log_output=str(home / "chromedriver.log")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium Manager: never download anything
        driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "light"}]
        })  # fmt: skip
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: Any, width: int, height: int, *, mobile: bool = False) -> None:
    """Emulate a screen of `width` x `height` CSS pixels at device scale factor 1."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
