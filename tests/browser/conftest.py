"""Browser fixtures: Debian's Chromium, headless, driven by Playwright for Python (never
`playwright install`: the browser is /usr/bin/chromium), against the e2e cluster fixture's
real api, scheduler, agent and Docker.

Without Chromium or Playwright the browser tests skip, unless JOBYARD_REQUIRE_BROWSER=1
(.ci/run sets it) makes that a failure. Each test's pages record every URL they request and
every console error, and the test fails if one leaves the API or a script fails (a CSP
refusal is a console error)."""

import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import ADMIN_TOKEN, Cluster
from tests.e2e.conftest import cluster, docker_client, docker_image

__all__ = ["cluster", "docker_client", "docker_image"]

CHROMIUM = os.environ.get("JOBYARD_CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a container: no sandbox, no GPU, /tmp for shared memory.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(os.environ.get("JOBYARD_SCREENSHOT_DIR", "build/screenshots"))
VIEWPORT = {"width": 1280, "height": 860}


def _require_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright (pip install -e '.[dev]')")
    if shutil.which(CHROMIUM) is None:
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    reason = "no " + " and no ".join(missing)
    if os.environ.get("JOBYARD_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " but JOBYARD_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Visit:
    """A browser context on the cluster's API, and what its pages did."""

    cluster: Cluster
    context: Any
    requested: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def page(self, token: str = ADMIN_TOKEN) -> Any:
        """A new page, logged in with `token` (the login link `jobyard up` prints)."""
        page = self.context.new_page()
        page.on("request", lambda request: self.requested.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.goto(f"/login?token={token}")
        return page

    def _console(self, message: Any) -> None:
        if message.type == "error" and not _an_expected_network_error(message.text):
            self.console_errors.append(message.text)

    def outside_the_api(self) -> list[str]:
        inside = (self.cluster.api_url + "/", "data:", "blob:")
        return [url for url in self.requested if not url.startswith(inside)]


def _an_expected_network_error(text: str) -> bool:
    # Streams cut by the offline test, and the 404 of another user's job, asked for on
    # purpose: the browser logs a failed request, which is not a script failing.
    return "ERR_INTERNET_DISCONNECTED" in text or "status of 404" in text


@pytest.fixture
def visit(browser: Any, cluster: Cluster) -> Iterator[Visit]:
    context = browser.new_context(base_url=cluster.api_url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    visit = Visit(cluster, context)
    try:
        yield visit
    finally:
        context.close()
    assert visit.outside_the_api() == [], "a page asked for a URL outside the API"
    assert visit.console_errors == [], "a page's script failed"


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
