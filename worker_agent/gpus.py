"""The worker's GPUs, named by index ("0" to "N-1" for JOBYARD_WORKER_GPUS=N, as Docker
device requests and CUDA_VISIBLE_DEVICES name them), and which running attempt holds which:
the control plane reserves a count, the agent picks the devices, never one twice at once."""

import contextlib
import threading
from collections.abc import Iterator

# How often a wait for devices looks at its attempt's cancel event.
WAIT_POLL_S = 0.1


class NotEnoughGpus(ValueError):
    """The job asks for more GPUs than this worker has at all."""


class GpuPool:
    def __init__(self, count: int) -> None:
        self.total = count
        self._free = [str(index) for index in range(count)]
        self._cond = threading.Condition()

    def take(self, wanted: int, cancel: threading.Event) -> tuple[str, ...] | None:
        """The lowest `wanted` free indices, taken; None if `cancel` is set first.

        It waits while other attempts hold them: the control plane frees a reservation as
        soon as it takes an attempt back, while the agent may still be killing its process.
        """
        if wanted > self.total:
            raise NotEnoughGpus(f"the job asks for {wanted} GPUs; this worker has {self.total}")
        with self._cond:
            while len(self._free) < wanted:
                if cancel.is_set():
                    return None
                self._cond.wait(WAIT_POLL_S)
            taken = tuple(sorted(self._free, key=int)[:wanted])
            self._free = [index for index in self._free if index not in taken]
            return taken

    def give_back(self, indices: tuple[str, ...]) -> None:
        with self._cond:
            if any(index in self._free for index in indices):
                raise ValueError(f"GPUs {','.join(indices)} are not all held")
            self._free.extend(indices)
            self._cond.notify_all()

    @contextlib.contextmanager
    def held(self, wanted: int, cancel: threading.Event) -> Iterator[tuple[str, ...] | None]:
        """take() for the block, given back however it ends."""
        taken = self.take(wanted, cancel)
        try:
            yield taken
        finally:
            if taken:
                self.give_back(taken)

    def free(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(sorted(self._free, key=int))
