"""The sizes and clocks of a soak run: `make soak` takes the defaults, the CI test smaller ones."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SoakPlan:
    jobs: int = 2000
    agents: int = 4
    submit_rate: float = 4.0  # jobs per second
    first_agent_kill_s: float = 2.0
    agent_kill_every_s: tuple[float, float] = (3.0, 6.0)
    agent_down_s: float = 1.0  # a killed agent is started again after this
    outage_s: float = 1.0  # the api, scheduler or Redis is started again after this
    worker_timeout_s: float = 3.0
    heartbeat_s: float = 1.0
    max_requeues: int = 3  # the default: more lost workers than this fail a job
    slots: int = 6  # jobs one agent runs at once
    stall_s: float = 120.0  # the run fails when no job has ended for this long
    seed: int = 1

    @property
    def submit_s(self) -> float:
        return self.jobs / self.submit_rate
