"""The agent's state directory: the worker ids it has had (so it can remove what they left
running), a lock, so that two agents never share one directory, and the places for output
spooled to disk and results not yet delivered."""

import fcntl
from collections.abc import Iterable
from pathlib import Path
from typing import IO


class StateDirInUse(RuntimeError):
    """Another agent holds this state directory."""


class AgentState:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._ids_path = self.directory / "worker_ids"
        self.spool_dir = self.directory / "spool"
        self.results_dir = self.directory / "results"
        self._lock_file: IO[str] | None = None

    def lock(self) -> None:
        """Hold the directory for this agent's lifetime; the kernel frees it if we die."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.directory / "lock", "w")  # noqa: SIM115 - held until unlock()
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            # Sharing it would make each agent kill the other's jobs as orphans.
            raise StateDirInUse(
                f"another agent uses {self.directory}; give each agent its own "
                "JOBYARD_AGENT_STATE_DIR"
            ) from None
        self._lock_file = lock_file

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def worker_ids(self) -> list[str]:
        try:
            lines = self._ids_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return list(dict.fromkeys(line.strip() for line in lines if line.strip()))

    def remember(self, worker_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._ids_path.open("a") as ids:
            ids.write(worker_id + "\n")

    def forget(self, worker_ids: Iterable[str]) -> None:
        """Drop ids whose leftovers are gone, so the file does not grow forever."""
        gone = set(worker_ids)
        kept = [worker_id for worker_id in self.worker_ids() if worker_id not in gone]
        temporary = self._ids_path.with_suffix(".tmp")
        temporary.write_text("".join(worker_id + "\n" for worker_id in kept))
        temporary.replace(self._ids_path)
