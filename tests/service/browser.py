"""A real headless Chromium (Debian's chromium + chromedriver) driven by selenium, for the playground tests.

A missing browser fails the tests (never skips them): `.ci/run` installs the Debian packages.
Selenium is pointed at the system binaries and told to stay offline, so nothing is downloaded.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("GAN_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("GAN_CHROMEDRIVER", "/usr/bin/chromedriver"))
DESKTOP = (1200, 900)
PHONE = (390, 844)


@contextmanager
def chromium(download_dir: Path):
    """A headless Chromium that saves downloads into download_dir and logs the page's requests."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the browser tests need {', '.join(missing)}: apt-get install -y chromium chromium-driver"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not try to fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-extensions", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-default-apps", "--lang=en-US", "--force-device-scale-factor=1",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):  # fmt: skip
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
    )
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
        )
        yield driver
    finally:
        driver.quit()


@contextmanager
def desktop_playground(url: str, download_dir: Path):
    """A fresh playground page of the service at `url` in a desktop-sized headless Chromium."""
    with chromium(download_dir) as driver:
        emulate(driver, *DESKTOP)
        yield Playground(driver, url).fresh()


def emulate(driver, width: int, height: int, dark: bool = False, mobile: bool = False) -> None:
    """Viewport size (a phone: mobile=True) and the OS colour scheme the page sees."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    scheme = "dark" if dark else "light"
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


def wait_for(predicate, timeout: float = 20, what: str = "condition"):
    """Poll predicate() until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the DOM may be between two renders
            last_error = e
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def requested_urls(driver) -> list[str]:
    """URLs the page requested since the last call (from Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, path: Path) -> Path:
    """A PNG of the viewport at `path`; with $GAN_UI_SCREENSHOT_DIR set, also a 256-colour copy there
    (how README's pictures are made: GAN_UI_SCREENSHOT_DIR=docs pytest tests/service/test_ui_browser.py)."""
    png = base64.b64decode(driver.get_screenshot_as_base64())
    path.write_bytes(png)
    out_dir = os.environ.get("GAN_UI_SCREENSHOT_DIR")
    if out_dir:
        from PIL import Image

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        small = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        small.save(Path(out_dir) / path.name, optimize=True)
    return path


def luminance(css_color: str) -> float:
    """Relative luminance 0..1 of a computed 'rgb(r, g, b)' / 'rgba(...)' colour."""
    parts = css_color[css_color.index("(") + 1 : css_color.index(")")].split(",")
    r, g, b = (float(p) / 255 for p in parts[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


class Playground:
    """The playground page in a driver: fields by their data-name, the tabs, the result grid."""

    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url

    def open(self, path: str = "/") -> Playground:
        self.driver.get(self.url + path)
        wait_for(
            lambda: self.driver.find_elements("css selector", "#model-list .model"), what="the model list"
        )
        wait_for(lambda: self.driver.find_elements("css selector", "#modes [role=tab]"), what="the mode tabs")
        return self

    def fresh(self, path: str = "/") -> Playground:
        """open() with no theme or token remembered from earlier tests, and empty browser logs."""
        self.driver.get(self.url + "/ui/")
        self.js("localStorage.clear(); sessionStorage.clear();")
        requested_urls(self.driver), console_errors(self.driver)
        return self.open(path)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css: str):
        return self.driver.find_element("css selector", css)

    def all(self, css: str):
        return self.driver.find_elements("css selector", css)

    def field(self, name: str):
        return self.find(f'.field[data-name="{name}"]')

    def has_field(self, name: str) -> bool:
        return any(f.is_displayed() for f in self.all(f'.field[data-name="{name}"]'))

    def control(self, name: str):
        return self.field(name).find_element("css selector", "input, select")

    def type(self, name: str, text: str) -> None:
        el = self.control(name)
        el.clear()
        el.send_keys(text)

    def select(self, name: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.control(name)).select_by_value(value)

    def error(self, name: str) -> str:
        return self.field(name).find_element("css selector", ".error").text

    def choose_model(self, name: str) -> None:
        self.find(f'.model[data-model="{name}"] label').click()
        wait_for(
            lambda: "chosen" in self.find(f'.model[data-model="{name}"]').get_attribute("class"), what=name
        )

    def tabs(self) -> list[str]:
        return [t.get_attribute("data-mode") for t in self.all("#modes [role=tab]")]

    def tab(self, mode: str) -> None:
        self.find(f"#tab-{mode}").click()

    def busy(self) -> bool:
        return self.find("#result").get_attribute("aria-busy") == "true"

    def run(self) -> None:
        """Press the run button and wait for the answer (or its error) to be shown."""
        before = self.answered()
        self.find("#run").click()
        self.wait_answered(before)

    def answered(self) -> int:
        """How many requests the page has finished (shown or failed) since it was loaded."""
        return int(self.find("#result").get_attribute("data-answered") or 0)

    def wait_answered(self, before: int) -> None:
        wait_for(lambda: self.answered() > before and not self.busy(), what="the request to finish")

    def pngs(self) -> list[str]:
        """Base64 PNG bytes of the images in the result grid, in order."""
        srcs = [img.get_attribute("src") for img in self.all("#grid img")]
        return [s.split(",", 1)[1] for s in srcs if s.startswith("data:image/png;base64,")]

    def no_horizontal_scroll(self) -> bool:
        return self.js("return document.documentElement.scrollWidth <= window.innerWidth")
