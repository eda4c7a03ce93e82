"""The change feed against a real redis-server: every Lua path that publishes, each event
checked against the one list of kinds and fields (shared/feed.py); what GET shows and the
feed says agree; and GET /api/v1/events/stream (Flask's test client) sends each kind as its
OpenAPI document says, to admins all of it and to a user only their own jobs' events."""

import json
import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from shared.client import ServerEvent, lines_of, parse_events
from shared.config import Config
from shared.feed import BY_NAME, KINDS, FieldType, Kind, Subject
from shared.schemas.events import EVENT_SCHEMAS
from shared.states import JobState, Reason, WorkerStatus
from shared.store import Store
from shared.store.jobs import Backoff
from shared.store.streams import START_OF_FEED
from tests.store_support import ManualClock, assign, register, submit

ADMIN = {"Authorization": "Bearer admin-token"}
BOB = {"Authorization": "Bearer bob-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
NO_WAIT = Backoff(0.0, 0.0)

VALUES: dict[FieldType, Any] = {
    FieldType.STRING: str,
    FieldType.INTEGER: int,
    FieldType.TIMESTAMP: (int, float),
    FieldType.JOB_STATE: {s.value for s in JobState},
    FieldType.REASON: {r.value for r in Reason},
    FieldType.WORKER_STATUS: {s.value for s in WorkerStatus},
}


def check_entry(fields: dict[str, str]) -> tuple[Kind, dict[str, Any]]:
    """One entry of the feed as a script stored it, checked against the list: a known kind,
    exactly its fields, each of its type; a job's owner beside the data, a worker's none."""
    kind = BY_NAME.get(fields["kind"])
    assert kind is not None, f"a kind the list lacks: {fields}"
    data: dict[str, Any] = json.loads(fields["data"])
    assert set(data) == kind.field_names, (kind.name, data)
    assert ("owner" in fields) == (kind.subject == Subject.JOB), fields
    for field in kind.fields:
        value, allowed = data[field.name], VALUES[field.type]
        if value is None:
            assert field.nullable, (kind.name, field.name)
        elif isinstance(allowed, set):
            assert value in allowed, (kind.name, field.name, value)
        else:
            assert isinstance(value, allowed) and not isinstance(value, bool), (kind.name, data)
    return kind, data


class Feed:
    """The feed's entries as Redis holds them, read on from where the last read ended."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.after = START_OF_FEED

    def new(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(kind, subject, data) of each entry since the last call, each checked."""
        entries = self.store.redis.xrange(self.store.keys.events, f"({self.after}", "+")
        if entries:
            self.after = entries[-1][0]
        out = []
        for _, fields in entries:
            kind, data = check_entry(fields)
            out.append((kind.name, fields["id"], data))
        return out


@pytest.fixture
def feed(store: Store) -> Feed:
    return Feed(store)


def running(store: Store, job_id: str, worker_id: str, **spec: Any) -> str:
    submit(store, job_id, **spec)
    assert assign(store, job_id, worker_id) == [1]
    store.jobs.start(job_id, worker_id, store.jobs.get(job_id)["attempt"])
    return job_id


def finish(store: Store, job_id: str, worker_id: str, **result: Any) -> None:
    store.jobs.finish(
        job_id,
        worker_id,
        store.jobs.get(job_id)["attempt"],
        exit_code=result.get("exit_code"),
        reason=result.get("reason"),
        error=None,
        metrics={},
        backoff=NO_WAIT,
    )


def every_publishing_path(store: Store, clock: ManualClock) -> None:
    """Each script path that publishes, once at least: submit, assign, start, result (done,
    failed with a retry left, cancelled), promote, pending, cancel (queued; running), output
    past its cap, reap (stale, timeout), expire, retry, delete, purge, register, drain, lost,
    deregister."""
    register(store, "w1")
    register(store, "w2")
    finish(store, running(store, "done", "w1"), "w1", exit_code=0)
    finish(store, running(store, "flaky", "w1", max_retries=1), "w1", exit_code=3)
    clock.advance(1)
    assert store.scheduling.promote_retries() == ["flaky"]
    store.scheduling.set_pending_reasons({"flaky": "no worker has 16 CPU"})
    submit(store, "queued")
    store.jobs.cancel("queued")
    store.jobs.retry("queued")
    store.jobs.cancel("queued")
    store.jobs.cancel(running(store, "stopped", "w1"))
    finish(store, "stopped", "w1", reason="cancelled")
    chunk = {"seq": 1, "stream": "stdout", "at": clock(), "data": "x" * 10}
    store.jobs.append_output(running(store, "chatty", "w2"), "w2", 1, [chunk], max_bytes=4)
    submit(store, "stale")
    assign(store, "stale", "w2")
    store.scheduling.reap("stale", "w2", 1, "stale", max_requeues=3)
    store.scheduling.reap(running(store, "slow", "w2", timeout_s=1), "w2", 1, "timeout", 3)
    submit(store, "unplaceable", queue_timeout_s=1)
    clock.advance(2)
    assert store.scheduling.expire_queued() == ["unplaceable"]
    store.jobs.delete("done")
    assert store.jobs.purge_finished(older_than_s=0, limit=10) >= 1
    store.workers.drain("w1")
    store.workers.mark_lost("w2", max_requeues=3)
    store.workers.deregister("w1")


def test_every_publishing_path_publishes_what_the_list_documents(
    store: Store, clock: ManualClock, feed: Feed
) -> None:
    every_publishing_path(store, clock)
    events = feed.new()  # each checked against the list as it is read

    assert {kind for kind, _, _ in events} == set(BY_NAME), "a kind no path publishes"
    by_job: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kind, subject, data in events:
        if BY_NAME[kind].subject == Subject.JOB:
            by_job.setdefault(subject, []).append((kind, data))
    for job_id, changes in by_job.items():
        versions = [data["version"] for _, data in changes]
        assert versions == list(range(1, len(versions) + 1)), (job_id, changes)
        if changes[-1][0] != "job_deleted":  # every version the job had reached the feed
            assert store.jobs.get(job_id)["version"] == versions[-1], job_id


def test_a_cancel_asked_for_is_a_new_version_that_get_and_the_feed_show(
    store: Store, feed: Feed
) -> None:
    register(store, "w1")
    running(store, "job", "w1")
    before = store.jobs.get("job")["version"]
    feed.new()

    asked = store.jobs.cancel("job")
    job = store.jobs.get("job")
    assert (asked.state, asked.version) == ("RUNNING", before + 1)
    assert (job["cancel_requested"], job["version"]) == (True, before + 1)
    [(kind, subject, data)] = feed.new()
    assert (kind, subject, data["state"], data["version"]) == (
        "job_cancel_requested", "job", "RUNNING", before + 1,
    )  # fmt: skip
    # Asking again changes nothing: the same version, no event.
    assert store.jobs.cancel("job").version == before + 1
    assert feed.new() == []


def test_a_pending_reason_reaches_the_feed_only_when_it_changes(store: Store, feed: Feed) -> None:
    submit(store, "job")
    feed.new()
    for reason in ("no worker has 16 CPU", "no worker has 16 CPU", "worker w1 is draining"):
        store.scheduling.set_pending_reasons({"job": reason})
    job = store.jobs.get("job")
    changes = feed.new()
    assert [(kind, data["pending_reason"]) for kind, _, data in changes] == [
        ("job_pending", "no worker has 16 CPU"), ("job_pending", "worker w1 is draining"),
    ]  # fmt: skip
    assert changes[-1][2]["version"] == job["version"] == 3
    assert job["pending_reason"] == "worker w1 is draining"


def test_output_past_its_cap_reaches_the_feed_once(store: Store, feed: Feed) -> None:
    register(store, "w1")
    running(store, "job", "w1")
    feed.new()
    for seq in (1, 2, 3):
        chunk = {"seq": seq, "stream": "stdout", "at": 1.0, "data": "0123456789"}
        store.jobs.append_output("job", "w1", 1, [chunk], max_bytes=15)
    job = store.jobs.get("job")
    [(kind, _, data)] = feed.new()
    assert (kind, data["version"]) == ("job_output_truncated", job["version"])
    assert job["output_truncated"]


def test_a_deregistered_worker_is_removed_not_a_status(store: Store, feed: Feed) -> None:
    """A removed worker is gone from GET /workers: no status of it can be shown there, so
    the feed says so with its own kind (as a deleted job does) rather than a status the
    enum lacks."""
    register(store, "w1")
    store.workers.drain("w1")
    store.workers.deregister("w1")
    assert [(kind, data.get("status")) for kind, _, data in feed.new()] == [
        ("worker", "alive"), ("worker", "draining"), ("worker_removed", None),
    ]  # fmt: skip
    assert store.workers.all() == []


def test_the_lua_scripts_publish_only_kinds_of_the_list() -> None:
    """Read from the sources, as a complement to running them: every kind a script names
    in a publish is listed, and every listed kind is published somewhere."""
    calls = re.compile(
        r"publish\('(\w+)'|publish_job\([^,]+, '(\w+)'|job_changed\([^,]+, [^,]+, '(\w+)'"
    )
    used: set[str] = set()
    for source in files("shared.store").joinpath("lua").iterdir():
        for match in calls.finditer(source.read_text()):
            used.add(next(group for group in match.groups() if group))
    assert used - set(BY_NAME) == set(), "published but not in shared/feed.py"
    # job_pending is published by pending_changed(), through job_changed() with a variable.
    assert set(BY_NAME) - used == set(), "listed but never published"


# Through the HTTP endpoint


@pytest.fixture
def client(store: Store) -> FlaskClient:
    store.tokens.create("bob", "user", "bob-token")
    return create_app(CONFIG, store).test_client()


def stream(
    client: FlaskClient, headers: dict[str, str], last_event_id: str | None = START_OF_FEED
) -> Iterator[ServerEvent]:
    """The feed's events as the endpoint sends them. The request is made now (a stream from
    now on starts here), the events are read as the caller asks for them."""
    if last_event_id is not None:
        headers = {**headers, "Last-Event-ID": last_event_id}
    response = client.get("/api/v1/events/stream", headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    return _closing(parse_events(lines_of(response.response)), response)


def _closing(events: Iterator[ServerEvent], response: Any) -> Iterator[ServerEvent]:
    try:
        yield from events
    finally:
        response.close()


def until(events: Iterator[ServerEvent], kind: str, subject: str) -> list[dict[str, Any]]:
    """Every event's data up to and including the first of `kind` about `subject`."""
    seen = []
    for event in events:
        seen.append(json.loads(event.data))
        if (seen[-1]["kind"], seen[-1]["id"]) == (kind, subject):
            return seen
    raise AssertionError("the stream ended early")


def test_the_stream_sends_every_kind_exactly_as_documented(
    store: Store, clock: ManualClock, client: FlaskClient
) -> None:
    every_publishing_path(store, clock)
    submit(store, "last")
    sent = until(stream(client, ADMIN), "job", "last")

    assert len(sent) == store.redis.xlen(store.keys.events)
    assert {event["kind"] for event in sent} == set(BY_NAME)
    for event in sent:
        kind = BY_NAME[event["kind"]]
        assert set(event) == kind.field_names | {"kind", "id"}, event
        assert EVENT_SCHEMAS[kind.name]().validate(event) == {}, event


def test_a_deletion_arrives_with_its_kind_and_a_newer_version(
    store: Store, client: FlaskClient
) -> None:
    submit(store, "job", owner="bob")
    store.jobs.cancel("job")
    version = store.jobs.get("job")["version"]
    live = stream(client, BOB, last_event_id=None)  # from now on
    response = client.delete("/api/v1/jobs/job", headers=BOB)
    assert response.status_code == 204, response.get_data(as_text=True)
    [deleted] = until(live, "job_deleted", "job")
    assert deleted["state"] == "CANCELLED" and deleted["version"] == version + 1


def test_a_user_sees_only_their_own_jobs_events_and_resumes_after_last_event_id(
    store: Store, client: FlaskClient
) -> None:
    register(store, "w1")
    running(store, "bobs", "w1", owner="bob")
    running(store, "alices", "w1", owner="alice")
    store.jobs.cancel("alices")
    store.jobs.cancel("bobs")
    finish(store, "bobs", "w1", reason="cancelled")
    store.jobs.delete("bobs")
    submit(store, "bobs-last", owner="bob")

    events = stream(client, BOB)
    first = next(events)
    rest = until(events, "job", "bobs-last")
    seen = [json.loads(first.data), *rest]
    assert {event["id"] for event in seen} == {"bobs", "bobs-last"}
    assert [event["kind"] for event in seen if event["id"] == "bobs"] == [
        "job", "job", "job", "job_cancel_requested", "job", "job_deleted",
    ]  # fmt: skip
    # Resuming after the first event sends the rest, the same.
    assert until(stream(client, BOB, first.last_id), "job", "bobs-last") == rest
    # An admin sees Alice's job and the worker too.
    admins = {(e["kind"], e["id"]) for e in until(stream(client, ADMIN), "job", "bobs-last")}
    assert {("worker", "w1"), ("job_cancel_requested", "alices")} <= admins


def test_the_openapi_document_shows_every_kind_with_its_fields(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    response = doc["paths"]["/api/v1/events/stream"]["get"]["responses"]["200"]
    schema = response["content"]["text/event-stream"]["schema"]
    components = doc["components"]["schemas"]
    documented = [components[ref["$ref"].rsplit("/", 1)[1]] for ref in schema["oneOf"]]
    assert len(documented) == len(KINDS)
    mapping = schema["discriminator"]["mapping"]
    assert [mapping[kind.name] for kind in KINDS] == [ref["$ref"] for ref in schema["oneOf"]]
    for kind, component in zip(KINDS, documented, strict=True):
        properties = component["properties"]
        assert properties["kind"]["enum"] == [kind.name]
        names = kind.field_names | {"kind", "id"}
        assert set(properties) == set(component["required"]) == names, kind.name
        assert component["additionalProperties"] is False
        for field in kind.fields:
            assert properties[field.name].get("nullable", False) == field.nullable


def test_a_resume_point_the_feed_has_trimmed_starts_with_a_reset(
    store: Store, client: FlaskClient
) -> None:
    for n in range(5):
        submit(store, f"j{n}")
    ids = [entry_id for entry_id, _ in store.redis.xrange(store.keys.events)]
    # Resuming after an entry still held, or from the start of an untrimmed feed: no reset.
    assert json.loads(next(stream(client, ADMIN, ids[2])).data)["id"] == "j3"
    assert json.loads(next(stream(client, ADMIN, START_OF_FEED)).data)["id"] == "j0"

    # An id newer than the newest entry (a Redis restored from an older snapshot).
    future = f"{int(ids[-1].split('-')[0]) + 60_000}-0"
    assert next(stream(client, ADMIN, future)).event == "reset"
    # As the cap does, in time, to a follower long gone.
    store.redis.xtrim(store.keys.events, maxlen=2, approximate=False)
    for resume in (ids[1], START_OF_FEED):
        newest = store.streams.last_change_id()
        events = stream(client, ADMIN, resume)
        reset = next(events)
        assert (reset.event, reset.data, reset.last_id) == ("reset", "{}", newest)
        submit(store, f"after-{resume}")  # and the stream goes on from the newest entry
        assert [e["id"] for e in until(events, "job", f"after-{resume}")] == [f"after-{resume}"]
