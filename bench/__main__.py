"""`python -m bench [NAME ...] [--quick]`: run the benchmarks (every one in BENCHMARKS unless
named), write bench/results/<name>.json, and print a markdown table for the README."""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    api_load,
    containers,
    dashboard,
    dispatch,
    output,
    packing,
    placement,
    reaper,
    throughput,
    transitions,
)
from bench.report import BenchResult, machine_line, markdown_table, write_result

BENCHMARKS: dict[str, Callable[[bool, Path], BenchResult]] = {
    "throughput": throughput.run,
    "containers": containers.run,
    "api_load": api_load.run,
    "transitions": transitions.run,
    "placement": placement.run,
    "dispatch": dispatch.run,
    "packing": lambda quick, _workdir: packing.run(quick),
    "output": output.run,
    "reaper": reaper.run,
    "dashboard": dashboard.run,
}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    results = []
    for name in args.benchmarks or list(BENCHMARKS):
        started, load = time.perf_counter(), os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix=f"jobyard-bench-{name}-") as workdir:
            result = BENCHMARKS[name](args.quick, Path(workdir))
        result.loadavg_at_start = load
        path = write_result(result, args.quick)
        took = time.perf_counter() - started
        print(f"{name}: {took:.0f} s, results in {path}", file=sys.stderr, flush=True)
        results.append(result)
    print(f"\nMeasured on {machine_line(results)}{' (--quick)' if args.quick else ''}; medians.\n")
    print(markdown_table([row for result in results for row in result.rows]))
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="NAME",
        help=f"one or more of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
