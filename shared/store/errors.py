"""What the store refuses, as exceptions the API turns into HTTP errors."""


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class StaleAttempt(StoreError):
    """A worker spoke about an attempt that is no longer current, or no longer its own."""


class NotYourAttempt(StaleAttempt):
    """A worker spoke about an attempt that was never its own (another worker holds the
    job, or held that attempt): refused without a word about the job (403)."""


class InvalidState(StoreError):
    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class WorkerLimit(StoreError):
    """JOBYARD_MAX_WORKERS worker records exist already: a registration waits for
    deregistrations, or for lost workers to pass their retention."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} workers are registered, the most JOBYARD_MAX_WORKERS allows; retry "
            "once some deregister or lost ones pass JOBYARD_WORKER_RETENTION_S"
        )
        self.limit = limit


class NameTaken(StoreError):
    """A name another token already holds."""
