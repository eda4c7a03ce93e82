"""The chaos soak (issue 4): short Docker jobs over several agents while a random agent is
killed -9 and restarted every few seconds, and the api, the scheduler and Redis (AOF,
appendfsync always) once each. At the end every acknowledged job must be terminal with one
terminal transition, no reservation or container left, counters equal to index sizes, and
each killed agent's jobs requeued within JOBYARD_WORKER_TIMEOUT_S + 2 s.

`make soak` (python -m tests.e2e.soak) runs it at full size; tests/e2e/test_soak.py at a
size CI affords.
"""

from tests.e2e.soak.checks import Figures
from tests.e2e.soak.plan import SoakPlan
from tests.e2e.soak.run import run_soak

__all__ = ["Figures", "SoakPlan", "run_soak"]
