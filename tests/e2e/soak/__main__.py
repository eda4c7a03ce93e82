"""`python -m tests.e2e.soak` (what `make soak` runs): the soak at full size, its figures
printed as a table and written to bench/results/soak.json. Exit status 1 when an invariant
did not hold; the work directory (every process's log) is then kept."""

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.report import RESULTS_DIR, code_version, machine
from tests.e2e.soak.checks import Figures
from tests.e2e.soak.plan import SoakPlan
from tests.e2e.soak.run import run_soak


def main() -> None:
    defaults = SoakPlan()
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--agents", type=int, default=defaults.agents)
    parser.add_argument("--rate", type=float, default=defaults.submit_rate, help="jobs/s")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "soak.json")
    args = parser.parse_args()
    plan = SoakPlan(jobs=args.jobs, agents=args.agents, submit_rate=args.rate, seed=args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="jobyard-soak-"))
    print(f"soak: {plan.jobs} jobs, {plan.agents} agents; logs in {workdir}", flush=True)
    figures = run_soak(plan, workdir)
    print(table(figures))
    write_json(args.json, plan, figures)
    print(f"figures written to {args.json}")
    if figures.violations:
        print(f"FAILED: invariants violated; logs kept in {workdir}", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)


def table(f: Figures) -> str:
    requeue = f.kill_to_requeue_s
    rows = [
        ("jobs acknowledged", f"{f.jobs} ({f.refused_submissions} refused submits retried)"),
        ("end states", _pairs(f.ends)),
        ("kills (-9)", _pairs(f.kills)),
        ("requeues", _pairs(f.requeues) or "none"),
        ("workers declared lost", f"{f.lost_workers} ({f.lost_but_not_killed} not killed)"),
        (
            "kill to requeue",
            f"p50 {requeue['p50']:.2f} s, max {requeue['max']:.2f} s (bound {requeue['bound']:g}"
            f" s; {requeue['timed_kills']} kills timed, {f.agent_kills_without_jobs} held no"
            " job)",
        ),
        ("outages (kill to serving)", ", ".join(f"{k} {v:.1f} s" for k, v in f.outages_s.items())),
        ("containers left", f"{f.containers_left} ({f.containers_left_running} running)"),
        ("duration", f"{f.duration_s:.0f} s"),
        ("violations", "; ".join(f.violations) or "none"),
    ]
    return "\n".join(
        ["| Measure | Value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    )


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items()))


def write_json(path: Path, plan: SoakPlan, figures: Figures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": "soak",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "plan": asdict(plan),
        "figures": asdict(figures),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
