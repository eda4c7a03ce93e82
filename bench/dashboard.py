"""The jobs page's load time in Chromium with 100,000 jobs stored, beside the same page with
100 (the peer: the page's cost when the store is small), through a real `jobyard api`
(gunicorn) on a real redis-server. Also the API call behind the page, timed alone.

A load is from `page.goto("/jobs")` until the page shows its first page of jobs (the rows
rendered from GET /api/v1/jobs) and has its change feed open: what a person waits for.
The target is under 1 s; the page and its API call read one page of jobs whatever the
store holds, so the two figures should be close.
"""

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import BenchResult, Row
from bench.servers import JobyardProcess, control_plane, redis_server, wait_ready
from bench.stats import median, ratio
from shared.client import ApiClient
from shared.config import Config
from shared.resources import Resources
from shared.store import Store, connect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SPEC: dict[str, Any] = {"image": "busybox", "command": ["true"], "name": "bench"}
PAGE_ROWS = 50  # the jobs page's page size (api/web/static/jobs.js)
TARGET_S = 1.0
FINISHED_SHARE = 0.9  # most jobs a store holds are over: cancelled here, the cheapest end


@dataclass(frozen=True)
class Sizes:
    stored: tuple[int, ...]
    loads: int
    api_calls: int


FULL = Sizes(stored=(100, 100_000), loads=7, api_calls=21)
QUICK = Sizes(stored=(100, 10_000), loads=3, api_calls=5)


@dataclass(frozen=True)
class Figures:
    page_load_s: float
    api_call_ms: float


def run(quick: bool, workdir: Path) -> BenchResult:
    from playwright.sync_api import sync_playwright

    sizes = QUICK if quick else FULL
    figures: dict[int, Figures] = {}
    with redis_server(workdir / "redis") as server, sync_playwright() as playwright:
        plane = control_plane(server.url)
        api = JobyardProcess("api", plane.env, workdir / "api.log")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        client = ApiClient(plane.api_url, plane.admin)
        try:
            wait_ready(client, api)
            store = Store(connect(server.url), Config.from_env({}).redis_prefix)
            for count in sizes.stored:
                store.redis.flushdb()
                seed(store, count)
                figures[count] = Figures(
                    page_load_s=page_loads(browser, plane.api_url, plane.admin, sizes.loads),
                    api_call_ms=api_calls(client, sizes.api_calls),
                )
                progress(f"dashboard: {count:,} jobs: {figures[count]}")
        finally:
            browser.close()
            client.close()
            api.stop()
    result = BenchResult(
        name="dashboard",
        sizes=asdict(sizes),
        figures={str(count): asdict(f) for count, f in figures.items()},
    )
    result.rows = rows(figures, sizes)
    return result


def seed(store: Store, count: int) -> None:
    progress(f"dashboard: storing {count:,} jobs")
    for n in range(count):
        job_id = f"j{n:07d}"
        store.jobs.submit(job_id, "bench", SPEC, Resources(100, 16, 0), 0)
        if n < count * FINISHED_SHARE:
            store.jobs.cancel(job_id)


def page_loads(browser: Any, api_url: str, token: str, loads: int) -> float:
    """Median seconds from navigation to the first page of jobs shown, feed open."""
    context = browser.new_context(base_url=api_url)
    page = context.new_page()
    page.goto(f"/login?token={token}")
    page.goto("/jobs")  # a first load warms the browser's cache of the static files
    rows = page.locator("tbody tr[data-job-id]")
    times = []
    for _ in range(loads):
        began = time.perf_counter()
        page.goto("/jobs")
        rows.nth(PAGE_ROWS - 1).wait_for()
        page.locator('[data-live="live"]').wait_for()
        times.append(time.perf_counter() - began)
    context.close()
    return median(times)


def api_calls(client: ApiClient, calls: int) -> float:
    """Median milliseconds of the page's API call: the newest page of jobs, with counts."""
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        answer = client.request("GET", "/api/v1/jobs", params={"limit": PAGE_ROWS})
        times.append((time.perf_counter() - began) * 1000)
        assert len(answer["jobs"]) == PAGE_ROWS
    return median(times)


def rows(figures: dict[int, Figures], sizes: Sizes) -> list[Row]:
    small, large = min(figures), max(figures)
    few, many = figures[small], figures[large]
    return [
        Row(
            "dashboard",
            f"jobs page load in Chromium, {large:,} jobs stored (median of {sizes.loads})",
            f"{many.page_load_s * 1000:.0f} ms",
            f"< {TARGET_S * 1000:.0f} ms",
            f"{small:,} jobs stored {few.page_load_s * 1000:.0f} ms",
            f"{ratio(many.page_load_s, few.page_load_s):.3g}x",
        ),
        Row(
            "dashboard",
            f"its API call, GET /api/v1/jobs?limit={PAGE_ROWS} (median of {sizes.api_calls})",
            f"{many.api_call_ms:.1f} ms",
            "",
            f"{small:,} jobs stored {few.api_call_ms:.1f} ms",
            f"{ratio(many.api_call_ms, few.api_call_ms):.3g}x",
        ),
    ]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
