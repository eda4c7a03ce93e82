"""The API under load: 64 concurrent clients (wrk, 2 threads, kept-alive connections) for
10 s each, submitting jobs (POST /api/v1/jobs) and reading one (GET /api/v1/jobs/{id}),
against `jobyard api` under gunicorn and `jobyard scheduler` on a redis-server run as
`jobyard up` runs it. No worker: the submitted jobs stay queued. wrk shares the machine's
cores with the servers it loads, as any client on the same host would. No peer: the
figures are reported, requests a second and the p99 of their latency."""

import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.dispatch import JOB
from bench.report import BenchResult, Row
from bench.servers import cluster, redis_server
from bench.stats import median
from shared.client import ApiClient

CLIENTS = 64
THREADS = 2
# wrk's Lua: every request the same method, body and headers.
SCRIPT = """wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Sizes:
    seconds: int
    runs: int


FULL = Sizes(seconds=10, runs=3)
QUICK = replace(FULL, seconds=3, runs=1)


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    results: dict[str, list[dict[str, float]]] = {"submit": [], "get": []}
    with redis_server(workdir / "redis", durable=True) as server, cluster(server, workdir) as c:
        job_id = ApiClient(c.api_url, c.admin).submit(JOB)["id"]
        submit = script(workdir / "submit.lua", "POST", json.dumps(JOB), c.admin)
        get = script(workdir / "get.lua", "GET", "nil", c.admin)
        for n in range(sizes.runs):
            progress(f"api_load: run {n + 1}/{sizes.runs}, {CLIENTS} clients")
            results["submit"].append(wrk(f"{c.api_url}/api/v1/jobs", submit, sizes.seconds))
            results["get"].append(wrk(f"{c.api_url}/api/v1/jobs/{job_id}", get, sizes.seconds))
    figures: dict[str, Any] = {
        f"{kind}_{key}": median([r[key] for r in runs])
        for kind, runs in results.items()
        for key in ("requests_per_s", "p50_ms", "p99_ms", "errors")
    }
    figures["runs"] = results
    result = BenchResult("api_load", {**asdict(sizes), "clients": CLIENTS}, figures)
    result.rows = [
        Row("api load", f"{what}, {CLIENTS} clients: requests/s, p50 / p99",
            f"{figures[f'{kind}_requests_per_s']:,.0f}/s, {figures[f'{kind}_p50_ms']:.0f} / "
            f"{figures[f'{kind}_p99_ms']:.0f} ms", "reported")
        for kind, what in (("submit", "POST /jobs"), ("get", "GET /jobs/{id}"))
    ]  # fmt: skip
    return result


def script(path: Path, method: str, body: str, token: str) -> Path:
    lua_body = "nil" if body == "nil" else json.dumps(body)  # a Lua string literal
    path.write_text(SCRIPT.format(method=method, body=lua_body, token=token))
    return path


def wrk(url: str, lua: Path, seconds: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{CLIENTS}", f"-d{seconds}s", "--latency", "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return parse(done.stdout)


def parse(output: str) -> dict[str, float]:
    """Requests a second, the p50 and p99 latencies and the non-2xx answers of wrk's report."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if not (rate and p50 and p99):
        raise RuntimeError(f"api_load: cannot read wrk's report:\n{output}")
    return {
        "requests_per_s": float(rate.group(1)),
        "p50_ms": float(p50.group(1)) * UNITS_MS[p50.group(2)],
        "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)],
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
