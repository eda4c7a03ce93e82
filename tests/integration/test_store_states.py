"""shared/states.py is the scripts' only state machine: the Lua preamble is generated from it,
and transition() in lib.lua refuses, inside Redis, any move its table does not allow."""

import json
import re
from importlib.resources import files
from itertools import product

import pytest
import redis

from shared.states import (
    NEW_ATTEMPT_CLEARS,
    REQUEUE_CLEARS,
    RETRYABLE_REASONS,
    TERMINAL_STATES,
    TRANSITIONS,
    USER_RETRY_CLEARS,
    USER_RETRYABLE_STATES,
    JobState,
)
from shared.store import Store
from shared.store.scripts import library
from tests.store_support import assign, register, submit

# What the preamble defines, read back from Redis as JSON.
READ_PREAMBLE = """
local keys = {}
for name, key in pairs(STATE_INDEX) do keys[name] = key end
return cjson.encode({
  COMMON = COMMON, STATE_INDEX = keys, TERMINAL = TERMINAL, RETRYABLE = RETRYABLE,
  TRANSITIONS = TRANSITIONS, NEW_ATTEMPT_CLEARS = NEW_ATTEMPT_CLEARS,
  USER_RETRYABLE = USER_RETRYABLE,
  REQUEUE_CLEARS = REQUEUE_CLEARS, USER_RETRY_CLEARS = USER_RETRY_CLEARS,
  GLOBALS = {K_EVENTS, K_QUEUE, K_WAKE, K_DEADLINES, K_RETRIES, K_FINISHED,
             K_ASSIGNED_AT, K_RUN_DEADLINES, K_OWNER_COUNTS, K_FINISHED_TOTALS, K_METRICS},
})
"""
# A test-only script: any move at all, through transition() alone.
MOVE = """
return transition(KEYS[COMMON + 1], KEYS[COMMON + 2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], {}, {})
"""


def test_the_preamble_is_the_state_machine_of_shared_states(store: Store) -> None:
    script = store.redis.register_script(library() + READ_PREAMBLE)
    seen = json.loads(script(keys=store.keys.common()))
    assert set(seen["TERMINAL"]) == TERMINAL_STATES
    assert set(seen["RETRYABLE"]) == RETRYABLE_REASONS
    assert set(seen["USER_RETRYABLE"]) == USER_RETRYABLE_STATES
    assert {state: set(targets) for state, targets in seen["TRANSITIONS"].items()} == {
        state.value: set(targets) for state, targets in TRANSITIONS.items()
    }
    assert seen["NEW_ATTEMPT_CLEARS"] == list(NEW_ATTEMPT_CLEARS)
    assert seen["REQUEUE_CLEARS"] == list(REQUEUE_CLEARS)
    assert seen["USER_RETRY_CLEARS"] == list(USER_RETRY_CLEARS)
    assert seen["COMMON"] == len(store.keys.common())
    assert seen["GLOBALS"] == list(store.keys.common_globals().values())
    assert seen["STATE_INDEX"] == {state.value: store.keys.state(state) for state in JobState}


def job_in(store: Store, state: JobState) -> str:
    """A job brought to `state` through the store's own scripts."""
    job_id = f"job-{state.value.lower()}"
    submit(store, job_id)
    if state == JobState.CANCELLED:
        store.jobs.cancel(job_id)
    elif state != JobState.QUEUED:
        register(store, "w1")
        assert assign(store, job_id, "w1") == [1]
        if state != JobState.ASSIGNED:
            store.jobs.start(job_id, "w1", 1)
        if state in (JobState.COMPLETED, JobState.FAILED):
            code = 0 if state == JobState.COMPLETED else 1
            store.jobs.finish(job_id, "w1", 1, exit_code=code, reason=None, error=None, metrics={})
    assert store.jobs.get(job_id)["state"] == state
    return job_id


def everything(raw: "redis.Redis[bytes]") -> dict[bytes, bytes | None]:
    """Every key, serialized: equal results mean nothing was written."""
    keys = sorted(raw.scan_iter(count=1000))
    return {key: raw.dump(key) for key in keys}


def move(store: Store, job_id: str, claimed: JobState, to: JobState) -> int:
    script = store.redis.register_script(library() + MOVE)
    keys = [*store.keys.common(), store.keys.job(job_id), store.keys.job_events(job_id)]
    return int(script(keys=keys, args=[job_id, claimed.value, to.value, store.jobs.clock()]))


@pytest.mark.parametrize(
    ("start", "to"),
    [pair for pair in product(JobState, JobState) if pair[1] in TRANSITIONS[pair[0]]],
)
def test_transition_makes_every_move_the_table_allows(
    store: Store, start: JobState, to: JobState
) -> None:
    job_id = job_in(store, start)
    before = store.jobs.get(job_id)["version"]
    assert move(store, job_id, start, to) == before + 1
    job = store.jobs.get(job_id)
    assert (job["state"], job["version"]) == (to, before + 1)
    last = store.jobs.events(job_id)[-1]
    assert (last["from"], last["to"], last["version"]) == (start, to, before + 1)


@pytest.mark.parametrize(
    ("start", "to"),
    [pair for pair in product(JobState, JobState) if pair[1] not in TRANSITIONS[pair[0]]],
)
def test_redis_refuses_every_move_the_table_forbids_and_writes_nothing(
    store: Store, redis_url: str, start: JobState, to: JobState
) -> None:
    job_id = job_in(store, start)
    raw: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    before = everything(raw)
    with pytest.raises(redis.ResponseError, match="illegal transition"):
        move(store, job_id, start, to)
    assert everything(raw) == before
    raw.close()


def test_redis_refuses_a_move_from_a_state_the_job_is_not_in(store: Store, redis_url: str) -> None:
    """RUNNING -> COMPLETED is allowed, but not for a job that is QUEUED: transition() reads
    the state itself rather than trusting its caller's word."""
    job_id = job_in(store, JobState.QUEUED)
    raw: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    before = everything(raw)
    with pytest.raises(redis.ResponseError, match="is QUEUED, asked to go RUNNING -> COMPLETED"):
        move(store, job_id, JobState.RUNNING, JobState.COMPLETED)
    assert everything(raw) == before
    raw.close()


def test_every_move_the_scripts_spell_out_is_in_the_table() -> None:
    """The moves written as literals in the scripts (the others take the job's current state
    as `from`; tests/integration/test_store_properties.py checks every history against the
    table, and Redis refuses an illegal one anyway)."""
    call = re.compile(r"transition\((?:[^,]+,){3}\s*'(\w+)',\s*'(\w+)'")
    moves = set()
    for script in files("shared.store").joinpath("lua").iterdir():
        moves |= set(call.findall(script.read_text()))
    assert len(moves) >= 6, moves  # the regex still finds the calls
    illegal = {(a, b) for a, b in moves if JobState(b) not in TRANSITIONS[JobState(a)]}
    assert not illegal, illegal
