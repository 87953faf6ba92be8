"""Real headless Chromium for the console tests: Debian's `chromium` driven by its `chromedriver`.

Each Browser is its own profile (its own cookie jar), like a separate person's browser. Pages are
checked for console errors, and every test saves screenshots under var/screenshots/.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from widip.config import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"
PASSWORD = "correct-horse-battery-staple"  # the `people` fixture's


class Browser:
    def __init__(self, base_url: str, *, width: int = 1280, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
            raise RuntimeError("browser tests need Debian's chromium and chromium-driver (make test installs them "
                               "as root; otherwise: apt-get install chromium chromium-driver)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--lang=fr-FR", "--disable-extensions"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.base_url = base_url
        self.console: list[dict] = []

    # --- navigation -----------------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def login(self, username: str, password: str = PASSWORD) -> None:
        from selenium.webdriver.common.by import By

        self.open("/console/login")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait(lambda d: "/console/chat" in d.current_url)

    # --- waiting and finding ------------------------------------------------------------------------
    def wait(self, condition, timeout: float = 20.0):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition)

    def find(self, css: str, text: str | None = None, timeout: float = 20.0):
        """The first visible element matching `css` (and containing `text`), waiting for it."""
        from selenium.webdriver.common.by import By

        def found(driver):
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                try:
                    if element.is_displayed() and (text is None or text in element.text):
                        return element
                except Exception:  # stale: the widget was refreshed under us; look again
                    continue
            return False
        return self.wait(found, timeout)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    # --- evidence -------------------------------------------------------------------------------------
    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        time.sleep(0.3)  # let the last paint land
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[dict]:
        self.console.extend(self.driver.get_log("browser"))
        return [e for e in self.console if e["level"] == "SEVERE"]

    def quit(self) -> None:
        self.driver.quit()
