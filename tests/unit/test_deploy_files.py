"""The example systemd unit in deploy/ passes `systemd-analyze verify` with nothing to say
(an unknown key is only a warning there, so the test wants no output at all), pointed at
this checkout's `jobyard`; and it drains on stop as the README says."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import require_binary

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "jobyard-worker.service"


def test_the_worker_unit_verifies(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    env_file = tmp_path / "worker.env"
    env_file.write_text("JOBYARD_API_URL=http://127.0.0.1:8080\n")
    jobyard = Path(sys.executable).parent / "jobyard"
    text = UNIT.read_text().replace("/opt/jobyard/bin/jobyard", str(jobyard))
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/etc/jobyard/worker.env", str(env_file)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_worker_unit_stops_by_draining() -> None:
    lines = UNIT.read_text().splitlines()
    assert "KillSignal=SIGTERM" in lines and "Restart=on-failure" in lines
    assert "ExecStart=/opt/jobyard/bin/jobyard worker" in lines
