"""The store's transition tests (tests/unit/test_store.py) on a real redis-server."""

import time

from tests.unit.test_store import *  # noqa: F403


def test_a_long_poll_outlasts_the_clients_socket_timeout(store: Store) -> None:  # noqa: F405
    """Blocking reads are sliced, so a wait longer than SOCKET_TIMEOUT_S is no error."""
    from shared.store import SOCKET_TIMEOUT_S

    register(store, "w1")  # noqa: F405
    began = time.monotonic()
    assert store.workers.pop_assigned("w1", SOCKET_TIMEOUT_S + 1) == []
    assert time.monotonic() - began >= SOCKET_TIMEOUT_S + 1
