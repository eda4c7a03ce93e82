"""The store's transition tests (tests/unit/test_store.py) on a real redis-server."""

import pytest

from tests.unit.test_store import *  # noqa: F403

pytestmark = pytest.mark.redis
