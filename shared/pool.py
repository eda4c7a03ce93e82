"""The pool as the scheduler reasons about it: queued jobs and the workers' capacity.

Plain values, read from Redis by the store and judged by scheduler/, which imports no
store code."""

from dataclasses import dataclass, field

from shared.resources import Resources


@dataclass(frozen=True)
class QueuedJob:
    id: str
    request: Resources
    priority: int
    pending_reason: str | None
    constraints: dict[str, str] = field(default_factory=dict)
    queued_at: float = 0.0
    timeout_s: float | None = None
    # It named no memory: its memory is the default, and binpack packs it by CPU alone.
    cpu_only: bool = False
    # It asks for a network: only a worker whose agent allows networks may take it.
    network: bool = False


@dataclass(frozen=True)
class WorkerView:
    id: str
    capacity: Resources
    reserved: Resources
    slots: int
    used_slots: int
    labels: dict[str, str] = field(default_factory=dict)
    allows_network: bool = False

    @property
    def free(self) -> Resources:
        return self.capacity - self.reserved

    @property
    def free_slots(self) -> int:
        return self.slots - self.used_slots
