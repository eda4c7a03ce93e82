"""What the store refuses, as exceptions the API turns into HTTP errors."""


class StoreError(Exception):
    pass


class NotFound(StoreError):
    pass


class StaleAttempt(StoreError):
    """A worker spoke about an attempt that is no longer current, or no longer its own."""


class InvalidState(StoreError):
    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class NameTaken(StoreError):
    """A name another token already holds."""
