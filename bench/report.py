"""Benchmark results: one JSON file per benchmark in bench/results/, and the markdown table
printed at the end of `python -m bench` for the README."""

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Row:
    """One line of the summary table: our figure, its target, and the peer's figure."""

    benchmark: str
    measure: str
    value: str
    target: str = ""
    peer: str = ""
    ratio: str = ""


@dataclass
class BenchResult:
    name: str
    sizes: dict[str, Any]
    figures: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    loadavg_at_start: float = 0.0  # other work on the machine skews every figure


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the code measured had uncommitted changes (the figures
    then describe uncommitted code)."""
    root = Path(__file__).parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", ".", ":!bench", ":!tests")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_changes": bool(changed)}


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "loadavg_1m": os.getloadavg()[0],
    }


def write_result(result: BenchResult, quick: bool) -> Path:
    """bench/results/<name>.json (or <name>-quick.json), replacing the previous one."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{result.name}{'-quick' if quick else ''}.json"
    document = {
        "name": result.name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {**machine(), "loadavg_1m_at_start": result.loadavg_at_start},
        "code": code_version(),
        "sizes": result.sizes,
        "figures": result.figures,
        "table": [asdict(row) for row in result.rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def markdown_table(rows: list[Row]) -> str:
    header = ["Benchmark", "Measure", "jobyard", "Target", "Peer", "Ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.benchmark, row.measure, row.value, row.target, row.peer, row.ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(results: list[BenchResult]) -> str:
    info = machine()
    loads = ", ".join(f"{r.name} {r.loadavg_at_start:.1f}" for r in results)
    return (
        f"{info['nproc']} cores, Python {info['python']}, {info['platform']}; "
        f"1-minute load average when each started: {loads}"
    )
