"""A headless Chromium for the console's browser tests: Debian's ``chromium`` driven through
``chromium-driver`` by Selenium. Both paths are explicit, so Selenium Manager never looks for
(or downloads) a browser of its own. ``.ci/run`` installs the two packages when missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = os.environ.get("MG_CONSOLE_SCREENSHOTS", "")
DESKTOP = (1280, 900)
PHONE = (390, 844)


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if not missing:
        return None
    return f"{' and '.join(missing)} missing (apt-get install -y chromium chromium-driver)"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a whole test module."""
    missing = browser_missing()
    if missing is not None:
        if os.geteuid() == 0:
            pytest.fail(f"{missing}: .ci/run installs them; as root nothing stops it")
        pytest.skip(f"not root and {missing}: the console's browser tests need them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI: Chromium's sandbox refuses to run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: Any, check: Callable[[Any], Any], seconds: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(check)


def screenshot(driver: Any, name: str, size: tuple[int, int] = DESKTOP) -> None:
    """With ``MG_CONSOLE_SCREENSHOTS=DIR``, save the page as ``DIR/<name>.png`` (for
    docs/console.md), the whole page's height up to a bound."""
    if not SCREENSHOTS:
        return
    before = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size[0], min(max(int(height), 400), 1400))
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))
    driver.set_window_size(before["width"], before["height"])


def follow(driver: Any, element: Any) -> None:
    """Click something that loads a new page, and wait until the old page is gone."""
    page = driver.find_element("tag name", "html")
    element.click()
    wait_until(driver, lambda _driver: _gone(page))


def _gone(page: Any) -> bool:
    """Whether ``page``'s element no longer belongs to the document (selenium's
    ``staleness_of``, plus the words chromedriver sometimes answers with instead of a stale
    element while the old document is being replaced: a flake seen once in CI)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        page.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False
