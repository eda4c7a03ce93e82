"""OutputStreamer: order and seq numbers, batching by size and by time, retries of the same
batch after failures, the API's cancel and stale answers, backpressure, and UTF-8."""

import threading
import time
from collections.abc import Mapping
from typing import Any

from shared.client import ApiError, ApiUnreachable
from shared.retry import Backoff
from tests.helpers import wait_until
from worker_agent.output import OutputStreamer

KIB = 1024


class FakeApi:
    """Records every post_output; `failures` are raised first, in order; `gate` can hold
    posts back; `answer` is what a successful post returns."""

    def __init__(self, failures: list[ApiError] | None = None) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.delivered: list[list[dict[str, Any]]] = []
        self.failures = list(failures or [])
        self.answer: dict[str, Any] = {"cancel": False}
        self.gate = threading.Event()
        self.gate.set()
        self.entered = 0  # posts begun, including one held at the gate
        self._lock = threading.Lock()

    def post_output(self, job_id: str, attempt: int, chunks: list[Mapping[str, Any]]) -> Any:
        assert (job_id, attempt) == ("job-1", 1)
        self.entered += 1
        self.gate.wait()
        with self._lock:
            self.posts.append([dict(chunk) for chunk in chunks])
            if self.failures:
                raise self.failures.pop(0)
            self.delivered.append([dict(chunk) for chunk in chunks])
        return self.answer

    def chunks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [chunk for batch in self.delivered for chunk in batch]

    def text(self, stream: str) -> str:
        return "".join(c["data"] for c in self.chunks() if c["stream"] == stream)


def fast_backoff() -> Backoff:
    """The agent's backoff at test speed."""
    return Backoff(0.01, 0.05)


def streamer_for(
    api: FakeApi, cancel: threading.Event | None = None, **options: Any
) -> OutputStreamer:
    options.setdefault("backoff", fast_backoff)
    options.setdefault("cancel_poll_s", None)  # tested on its own below
    return OutputStreamer(api, "job-1", 1, cancel or threading.Event(), **options)  # type: ignore[arg-type]


def test_order_is_kept_and_seqs_count_up_from_one() -> None:
    api = FakeApi()
    streamer = streamer_for(api)

    for n in range(200):
        streamer.sink("stdout" if n % 3 else "stderr", f"{n};".encode(), 1000.0 + n)
    assert streamer.close(timeout_s=5)

    chunks = api.chunks()
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    expected = [f"{n};" for n in range(200)]
    assert "".join(c["data"] for c in chunks) == "".join(expected)
    assert api.text("stderr") == "".join(e for n, e in enumerate(expected) if n % 3 == 0)


def test_adjacent_pieces_of_a_stream_merge_into_one_chunk_with_the_first_time() -> None:
    api = FakeApi()
    api.gate.clear()  # hold the first post so everything else queues up
    streamer = streamer_for(api, flush_interval_s=0.01)
    streamer.sink("stdout", b"first", 1.0)
    wait_until(lambda: api.entered == 1)
    for n in range(10):
        streamer.sink("stdout", b"x", 2.0 + n)
    streamer.sink("stderr", b"e", 20.0)
    api.gate.set()
    streamer.close(timeout_s=5)

    later = [c for c in api.chunks() if c["data"] != "first"]
    assert later == [
        {"seq": later[0]["seq"], "stream": "stdout", "at": 2.0, "data": "x" * 10},
        {"seq": later[0]["seq"] + 1, "stream": "stderr", "at": 20.0, "data": "e"},
    ]


def test_a_small_piece_is_sent_within_the_flush_interval_without_close() -> None:
    api = FakeApi()
    streamer = streamer_for(api, flush_interval_s=0.1)

    streamer.sink("stdout", b"hello\n", 1.0)

    wait_until(lambda: api.text("stdout") == "hello\n", timeout=2)
    streamer.close(timeout_s=5)


def test_64_kib_pending_flushes_at_once_and_batches_stay_under_it() -> None:
    api = FakeApi()
    streamer = streamer_for(api, flush_interval_s=60)  # only size can trigger a flush

    streamer.sink("stdout", b"a" * (64 * KIB), 1.0)
    wait_until(lambda: len(api.delivered) == 1, timeout=2)
    streamer.sink("stdout", b"b" * (200 * KIB), 2.0)
    streamer.close(timeout_s=5)

    assert api.text("stdout") == "a" * (64 * KIB) + "b" * (200 * KIB)
    assert all(sum(len(c["data"]) for c in batch) <= 64 * KIB for batch in api.delivered)


def test_many_small_writes_are_batched() -> None:
    api = FakeApi()
    streamer = streamer_for(api, flush_interval_s=0.05)

    for n in range(2000):
        streamer.sink("stdout", b"line %d\n" % n, 1.0)
    streamer.close(timeout_s=5)

    assert api.text("stdout") == "".join(f"line {n}\n" for n in range(2000))
    assert len(api.delivered) < 100


def test_a_failed_batch_is_retried_with_the_same_seqs() -> None:
    api = FakeApi(failures=[ApiUnreachable("connection refused"), ApiError(503, "redis", "down")])
    streamer = streamer_for(api)

    streamer.sink("stdout", b"one\n", 1.0)
    streamer.sink("stderr", b"two\n", 2.0)
    wait_until(lambda: len(api.delivered) == 1, timeout=2)
    streamer.sink("stdout", b"three\n", 3.0)
    assert streamer.close(timeout_s=5)

    assert api.posts[0] == api.posts[1] == api.posts[2] == api.delivered[0]
    assert [c["seq"] for c in api.chunks()] == [1, 2, 3]
    assert api.text("stdout") == "one\nthree\n"


def test_output_keeps_buffering_while_the_api_is_unreachable() -> None:
    api = FakeApi(failures=[ApiUnreachable("down")] * 5)
    streamer = streamer_for(api, flush_interval_s=0.01)

    for n in range(25):
        streamer.sink("stdout", b"%d," % n, 1.0)
    wait_until(lambda: api.posts, timeout=2)  # a post has failed: the rest comes meanwhile
    for n in range(25, 50):
        streamer.sink("stdout", b"%d," % n, 1.0)
    assert streamer.close(timeout_s=5)

    assert api.text("stdout") == "".join(f"{n}," for n in range(50))
    seqs = [c["seq"] for c in api.chunks()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_cancel_answer_sets_the_cancel_event() -> None:
    api = FakeApi()
    api.answer = {"cancel": True}
    cancel = threading.Event()
    streamer = streamer_for(api, cancel)

    streamer.sink("stdout", b"x", 1.0)

    wait_until(cancel.is_set, timeout=2)
    streamer.close(timeout_s=5)


def test_stale_attempt_sets_cancel_and_drops_the_rest_without_blocking() -> None:
    api = FakeApi(failures=[ApiError(409, "stale_attempt", "attempt 1 is not current")])
    cancel = threading.Event()
    streamer = streamer_for(api, cancel, max_pending_bytes=64 * KIB)

    streamer.sink("stdout", b"x", 1.0)
    wait_until(cancel.is_set, timeout=2)
    for _ in range(100):  # far past the buffer: must not block once stale
        streamer.sink("stdout", b"y" * KIB, 2.0)

    assert streamer.close(timeout_s=5) is False
    assert streamer.stale
    assert api.delivered == []


def test_a_refused_batch_is_dropped_and_the_rest_still_goes() -> None:
    api = FakeApi(failures=[ApiError(422, "invalid", "bad chunk")])
    streamer = streamer_for(api)

    streamer.sink("stdout", b"bad", 1.0)
    wait_until(lambda: len(api.posts) == 1, timeout=2)
    streamer.sink("stdout", b"good", 2.0)

    assert streamer.close(timeout_s=5) is False
    assert api.text("stdout") == "good"
    assert [c["seq"] for c in api.chunks()] == [2]


def test_sink_blocks_when_the_buffer_is_full_and_resumes_in_order() -> None:
    api = FakeApi()
    api.gate.clear()
    streamer = streamer_for(
        api, flush_bytes=4 * KIB, max_pending_bytes=16 * KIB, flush_interval_s=0.01
    )
    written: list[int] = []

    def produce() -> None:
        for n in range(40):
            streamer.sink("stdout", bytes([65 + n % 26]) * KIB, float(n))
            written.append(n)

    producer = threading.Thread(target=produce)
    producer.start()
    # One batch (1 to 4 KiB) is in flight, held at the gate, and 16 KiB wait: then it blocks.
    wait_until(lambda: len(written) >= 17, timeout=2)
    time.sleep(0.1)  # time in which an unbounded buffer would have taken everything
    assert 17 <= len(written) <= 20
    assert producer.is_alive()

    api.gate.set()
    producer.join(timeout=5)
    assert streamer.close(timeout_s=5)
    assert api.text("stdout") == "".join(chr(65 + n % 26) * KIB for n in range(40))


def test_close_gives_up_after_its_timeout_when_the_api_never_answers() -> None:
    api = FakeApi(failures=[ApiUnreachable("down")] * 10_000)
    streamer = streamer_for(api)
    streamer.sink("stdout", b"lost", 1.0)

    started = time.monotonic()
    assert streamer.close(timeout_s=0.3) is False
    assert time.monotonic() - started < 2


def test_a_character_split_across_reads_is_decoded_whole() -> None:
    api = FakeApi()
    streamer = streamer_for(api, flush_interval_s=0.01)
    encoded = "héllo €".encode()

    streamer.sink("stdout", encoded[:2], 1.0)  # ends inside "é"
    wait_until(lambda: api.delivered, timeout=2)  # the first half goes out alone
    streamer.sink("stdout", encoded[2:-1], 2.0)  # ends inside "€"
    streamer.sink("stderr", b"\xff", 3.0)  # not UTF-8 at all
    streamer.close(timeout_s=5)

    assert api.text("stdout") == "héllo \ufffd"
    assert api.text("stderr") == "\ufffd"


def test_with_no_output_it_still_asks_whether_to_cancel_every_poll_interval() -> None:
    api = FakeApi()
    api.answer = {"cancel": True}
    cancel = threading.Event()
    streamer = streamer_for(api, cancel, cancel_poll_s=0.05)

    wait_until(cancel.is_set, timeout=2)

    assert api.posts[0] == []  # an empty post: no seq is spent on it
    streamer.close(timeout_s=5)
    assert len(api.posts) == 1  # no more polls once cancelled


def test_polls_stop_when_the_api_refuses_empty_posts() -> None:
    api = FakeApi(failures=[ApiError(422, "invalid", "chunks: empty")])
    streamer = streamer_for(api, cancel_poll_s=0.02)

    wait_until(lambda: len(api.posts) == 1, timeout=2)
    streamer.sink("stdout", b"still delivered", 1.0)

    assert streamer.close(timeout_s=5)
    assert api.text("stdout") == "still delivered"
    assert api.posts[1:] == api.delivered
