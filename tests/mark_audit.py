"""A pytest plugin for tests/test_marks.py (`-p tests.mark_audit`): once collection and `-m`
are done, writes each selected test's fixtures and marks as JSON to $JOBYARD_MARK_AUDIT."""

import json
import os
from pathlib import Path

import pytest

AUDIT_FILE = "JOBYARD_MARK_AUDIT"


def pytest_collection_finish(session: pytest.Session) -> None:
    selected = {
        item.nodeid: {
            "fixtures": sorted(getattr(item, "fixturenames", ())),
            "marks": sorted({mark.name for mark in item.iter_markers()}),
        }
        for item in session.items
    }
    Path(os.environ[AUDIT_FILE]).write_text(json.dumps(selected))
