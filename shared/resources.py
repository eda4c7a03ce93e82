"""Resources in integers: CPU in millicores, memory in MiB, GPUs as a count.

Floats only exist at the edge (the wire and the user); everything that adds or compares
resources works on these integers, so reservations never drift by rounding.
"""

from dataclasses import dataclass


def cpu_to_millicores(cpu: float) -> int:
    return round(cpu * 1000)


def millicores_to_cpu(millicores: int) -> float:
    return millicores / 1000


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_m: int
    memory_mb: int
    gpus: int = 0

    def fits_in(self, free: "Resources") -> bool:
        return (
            self.cpu_m <= free.cpu_m and self.memory_mb <= free.memory_mb and self.gpus <= free.gpus
        )

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(
            self.cpu_m + other.cpu_m, self.memory_mb + other.memory_mb, self.gpus + other.gpus
        )

    def __sub__(self, other: "Resources") -> "Resources":
        return Resources(
            self.cpu_m - other.cpu_m, self.memory_mb - other.memory_mb, self.gpus - other.gpus
        )

    def describe(self) -> str:
        """Human form, as used in pending reasons: '2 CPU, 512 MB'."""
        text = f"{millicores_to_cpu(self.cpu_m):g} CPU, {self.memory_mb} MB"
        if self.gpus:
            text += f", {self.gpus} GPU"
        return text

    def to_wire(self) -> dict[str, float | int]:
        return {
            "cpu": millicores_to_cpu(self.cpu_m),
            "memory_mb": self.memory_mb,
            "gpus": self.gpus,
        }


# What a job gets of each resource its submission leaves out. The one source: the API's
# submission schema (and so the OpenAPI document) and the CLI's help derive from it.
DEFAULT_JOB_RESOURCES = Resources(cpu_m=500, memory_mb=256, gpus=0)
