"""A real headless Chromium for the tests that open pages, driven by Selenium through
Debian's ``chromium-driver`` (the driver of the same Chromium, so nothing is downloaded)."""

from __future__ import annotations

import base64
import shutil
from contextlib import contextmanager
from typing import Any, Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

#: How long a page may take to load, and a script to run.
TIMEOUT_S = 60


class Page:
    """The page of one headless Chromium window."""

    def __init__(self, driver: webdriver.Chrome):
        self.driver = driver

    def open(self, url: str) -> None:
        """Load ``url``; returns once the page and its images have loaded."""
        self.driver.get(url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        return self.driver.execute_script(f"return ({expression});")

    def screenshot(self) -> bytes:
        """The whole page as PNG, below the window's bottom edge too."""
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        return base64.b64decode(shot["data"])


@contextmanager
def chromium(width: int = 1200, height: int = 900) -> Iterator[Page]:
    """A headless Chromium with a window of ``width`` x ``height``, quit on leaving."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver_path = shutil.which("chromedriver")
    assert binary and driver_path, "no chromium or chromedriver on PATH (Debian: apt-get install chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.set_page_load_timeout(TIMEOUT_S)
        driver.set_script_timeout(TIMEOUT_S)
        yield Page(driver)
    finally:
        driver.quit()
