"""No test sleeps to wait for something: a wait is `wait_until` on a condition
(tests/helpers.py). A sleep that is itself the behaviour under test (an outage, a window in
which something must not happen) says so in a comment on its line."""

import re
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLEEP = re.compile(r"\bsleep\(")


def unexplained_sleeps(path: Path) -> Iterator[str]:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        found = SLEEP.search(line)
        if found and "#" not in line[found.end() :]:
            yield f"{path.relative_to(TESTS)}:{number}: {line.strip()}"


def test_every_sleep_in_the_tests_says_why_on_its_line() -> None:
    found = [line for path in sorted(TESTS.rglob("*.py")) for line in unexplained_sleeps(path)]
    assert found == [], "wait with wait_until, or say why the sleep is the behaviour tested"
