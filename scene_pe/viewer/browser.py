"""Headless Chromium for the viewer's tests and benchmark: Debian's chromium and chromedriver, selenium.

WebGL draws on the CPU through SwiftShader (``--use-angle=swiftshader
--enable-unsafe-swiftshader``); the background-networking flags and a fresh
profile keep Chromium from calling Google's hosts, which a closed network
refuses. Every wait polls a condition of the page (``window.scenePe``), with
a generous timeout, never a fixed sleep.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions", "--force-device-scale-factor=1", "--mute-audio")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def missing() -> str | None:
    """Why the browser cannot run here (None: it can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is not installed (Debian package {package}; tools/setup_env.sh installs it as root)"
    return None


class Browser:
    """One headless Chromium with a fresh profile; a context manager."""

    def __init__(self, width: int = 1200, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="scene_pe_chromium_"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition: str, timeout: float = 180.0, what: str = ""):
        """Poll the JavaScript expression until it is truthy; its value. A page error ends the wait."""
        end = time.monotonic() + timeout
        while True:
            value = self.js(f"return ({condition});")
            if value:
                return value
            error = self.js("return window.scenePe ? window.scenePe.error : null;")
            if error:
                raise RuntimeError(f"the page failed: {error}")
            if time.monotonic() > end:
                raise TimeoutError(f"{what or condition}: not true after {timeout:.0f} s")
            time.sleep(0.05)

    def open(self, page: str | Path, timeout: float = 180.0) -> float:
        """Load the page from file:// and wait until it has drawn; seconds from navigation to ready."""
        self.driver.get("about:blank")  # leave the start page (its chrome:// requests), then drop its logs
        self.console(), self.requested_urls()
        t = time.perf_counter()
        self.driver.get(Path(page).resolve().as_uri())
        self.wait("window.scenePe && window.scenePe.ready === true", timeout, f"{page}: ready")
        return time.perf_counter() - t

    def set_layer(self, key: str, timeout: float = 60.0) -> None:
        frame = self.js("return window.scenePe.setLayer(arguments[0]);", key)
        self.wait(f"window.scenePe.frame >= {int(frame)} && window.scenePe.layer === {json.dumps(key)}", timeout)

    def screenshot(self, selector: str = "#view canvas") -> np.ndarray:
        """(H, W, 3) uint8 pixels of an element (default: the 3D view)."""
        from PIL import Image

        png = self.driver.find_element("css selector", selector).screenshot_as_png
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def save_screenshot(self, path: str | Path) -> None:
        """The whole window (side panel and view) as a PNG."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

    def console(self, levels: tuple[str, ...] = ("SEVERE",)) -> list[str]:
        """Console messages at these levels since the last call."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] in levels]

    def requested_urls(self) -> list[str]:
        """Every URL the browser asked for since the last call (DevTools performance log)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls


def non_local(urls: list[str]) -> list[str]:
    return [u for u in urls if not u.startswith(LOCAL_SCHEMES)]
