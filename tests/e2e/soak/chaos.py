"""The soak's chaos: kill -9 a random agent every few seconds and restart it on its own state
directory, and kill -9 the api, the scheduler and Redis once each, restarting each after a
short outage.

No agent is killed from shortly before a control-plane kill until that part serves again:
while the scheduler or Redis is down nothing can be requeued, so kill-to-requeue would time
the outage instead of the reaper.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.store import Store
from tests.e2e.cluster import Cluster, DurableRedis
from tests.e2e.soak.plan import SoakPlan
from tests.helpers import wait_until

CONTROL_PLANE = ("api", "scheduler", "redis")
# When each control-plane part dies, as a fraction of the planned submission time.
CONTROL_PLANE_AT = (0.4, 0.6, 0.8)
# After a control-plane part serves again, agents are left alone this long.
SETTLE_S = 1.0
RECOVERY_TIMEOUT_S = 60.0
TICK_S = 0.1


@dataclass(frozen=True)
class Kill:
    target: str  # agent, api, scheduler or redis
    process: str  # the process killed: worker2, api, ...
    at: float  # epoch seconds, comparable with the times in job events
    down_s: float  # from the kill until it was started again and (control plane) serves
    worker_id: str = ""  # an agent's worker id when it was killed
    held: int = 0  # jobs that worker held just after the kill


class Chaos:
    def __init__(
        self, cluster: Cluster, redis_server: DurableRedis, store: Store, plan: SoakPlan
    ) -> None:
        self.cluster = cluster
        self.redis_server = redis_server
        self.store = store
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.agents = [f"worker{n}" for n in range(plan.agents)]
        self.kills: list[Kill] = []
        self._killed_ids: set[str] = set()

    def run(self, keep_going: Callable[[], bool]) -> None:
        """Kill agents while keep_going() says so, and each control-plane part at its time
        (even if keep_going() turned false before it)."""
        started = time.monotonic()
        pending = {
            name: fraction * self.plan.submit_s
            for name, fraction in zip(CONTROL_PLANE, CONTROL_PLANE_AT, strict=True)
        }
        next_agent_kill = self.plan.first_agent_kill_s
        while pending or keep_going():
            self.cluster.check_alive()
            now = time.monotonic() - started
            due = [name for name, at in pending.items() if at <= now]
            if due:
                del pending[due[0]]
                self.kills.append(self._kill_control_plane(due[0]))
                now = time.monotonic() - started
                next_agent_kill = max(next_agent_kill, now + SETTLE_S)
            elif now >= next_agent_kill and keep_going():
                # A requeue takes up to worker_timeout_s + about 2 s; no outage may start then.
                window = self.plan.agent_down_s + self.plan.worker_timeout_s + 2.0
                if all(at > now + window for at in pending.values()):
                    victim = self._victim()
                    if victim is not None:
                        self.kills.append(self._kill_agent(victim))
                        next_agent_kill = now + self.rng.uniform(*self.plan.agent_kill_every_s)
            time.sleep(TICK_S)  # the chaos clock: each tick looks at what is due

    def _victim(self) -> str | None:
        """A random agent that has registered since it was last killed (else the kill
        would be timed against the old worker's requeue), preferring those whose worker
        holds jobs (binpack may leave some idle), so that the kill has requeues to time."""
        ready = {name: self._worker_id(name) for name in self.agents}
        ready = {name: w for name, w in ready.items() if w and w not in self._killed_ids}
        busy = [name for name, worker_id in ready.items() if self._held(worker_id)]
        candidates = busy or list(ready)
        return self.rng.choice(candidates) if candidates else None

    def _held(self, worker_id: str) -> int:
        return self.store.redis.scard(self.store.keys.worker_jobs(worker_id)) if worker_id else 0

    def _kill_agent(self, name: str) -> Kill:
        worker_id = self._worker_id(name)
        at = time.time()
        self.cluster.kill(name)
        held = self._held(worker_id)
        self._killed_ids.add(worker_id)
        self._log(f"killed {name} worker={worker_id} held={held}")
        time.sleep(self.plan.agent_down_s)  # the agent's outage is the behaviour tested
        self.cluster.restart(name)  # same state dir: it removes what its old ids left
        return Kill("agent", name, at, time.time() - at, worker_id, held)

    def _worker_id(self, name: str) -> str:
        """The id the agent registered last (it appends each one to its state dir)."""
        _, env = self.cluster.commands[name]
        path = Path(env["JOBYARD_AGENT_STATE_DIR"]) / "worker_ids"
        ids = path.read_text().split() if path.exists() else []
        return ids[-1] if ids else ""

    def _kill_control_plane(self, name: str) -> Kill:
        leading_before = self._leading_count()
        at = time.time()
        self._log(f"killing {name}")
        if name == "redis":
            self.redis_server.kill()
        else:
            self.cluster.kill(name)
        time.sleep(self.plan.outage_s)  # the outage is the behaviour tested
        if name == "redis":
            self.redis_server.start()
        else:
            self.cluster.restart(name)
        self.cluster.wait_ready(RECOVERY_TIMEOUT_S)
        if name == "scheduler":
            # Back once it leads: it waits for the dead one's lease to lapse first.
            wait_until(
                lambda: self._leading_count() > leading_before,
                timeout=RECOVERY_TIMEOUT_S,
                interval=TICK_S,
                message="the restarted scheduler never took the lease",
            )
        self._log(f"{name} serves again")
        return Kill(name, name, at, time.time() - at)

    def _log(self, line: str) -> None:
        """The chaos's own log beside the processes' logs, to line up with theirs."""
        stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds")
        with (self.cluster.workdir / "chaos.log").open("a") as log:
            log.write(f"{stamp} {line}\n")

    def _leading_count(self) -> int:
        return (self.cluster.workdir / "scheduler.log").read_text().count("event=leading")
