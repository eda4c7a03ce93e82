"""Streams one attempt's output to the API: the executor's sink fills a bounded buffer (in
memory, then on disk past a limit), a sender thread posts it in numbered chunks every 100 ms
or 64 KiB, retrying the same chunks until the API takes them, and relays the API's "cancel"
to the attempt."""

import codecs
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import clock
from shared.client import STALE_ATTEMPT, ApiClient, ApiError
from shared.retry import Backoff, GaveUp, retry
from worker_agent.logfmt import log_event
from worker_agent.spool import Spool

log = logging.getLogger(__name__)

KIB = 1024
FLUSH_INTERVAL_S = 0.1
FLUSH_BYTES = 64 * KIB
MAX_PENDING_BYTES = 1024 * KIB
# With no output to carry the question, ask this often whether the job was cancelled: the
# heartbeat alone (every 10 s by default) could not keep the promise of a stop within 2 s.
CANCEL_POLL_S = 1.0


@dataclass(frozen=True)
class _Piece:
    stream: str
    data: bytes
    at: float  # epoch time the executor read it
    queued: float  # monotonic time it entered the buffer (-inf: overdue, from the spool)


class OutputStreamer:
    """Output of one attempt; `sink` is given to the executor, `close` ends the stream.

    Memory is bounded: past `max_pending_bytes` waiting to be sent, pieces go on to a spool
    in `spool_dir` (up to `max_spool_bytes` of disk); past that, or without a spool, `sink`
    blocks (and with it the job's pipe) until the API catches up. Order is kept, and seq
    numbers are given once per chunk, so a retried post carries the same seqs and the
    server drops repeats.
    """

    def __init__(
        self,
        client: ApiClient,
        job_id: str,
        attempt: int,
        cancel: threading.Event,
        *,
        worker_id: str = "",
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_bytes: int = FLUSH_BYTES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        cancel_poll_s: float | None = CANCEL_POLL_S,
        backoff: Callable[[], Backoff] = Backoff,
        spool_dir: Path | None = None,
        max_spool_bytes: int = 0,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.attempt = attempt
        self.cancel = cancel
        self.worker_id = worker_id
        self.flush_interval_s = flush_interval_s
        self.flush_bytes = flush_bytes
        self.max_pending_bytes = max(max_pending_bytes, flush_bytes)
        self.cancel_poll_s = cancel_poll_s
        self.backoff = backoff
        self.stale = False  # the API said this attempt is not current any more
        self.dropped = False  # some output could not be delivered
        self._cond = threading.Condition()
        self._pending: deque[_Piece] = deque()
        self._pending_bytes = 0
        # The tail of the buffer once memory is full; None once it failed (disk full).
        self._spool = Spool(spool_dir) if spool_dir is not None and max_spool_bytes else None
        self.max_spool_bytes = max_spool_bytes
        self._spilled = False  # logged once per attempt
        self._closing = False
        self._abandoned = False
        self._give_up = threading.Event()
        self._seq = 0
        self._last_post = clock.monotonic()
        self._decoders = {name: _decoder() for name in ("stdout", "stderr")}
        self._thread = threading.Thread(
            target=self._send_loop, name=f"output-{job_id}-{attempt}", daemon=True
        )
        self._thread.start()

    def sink(self, stream: str, data: bytes, at: float) -> None:
        """The executor's OutputSink; blocks while the buffer is full."""
        for start in range(0, len(data), self.flush_bytes):
            self._put(_Piece(stream, data[start : start + self.flush_bytes], at, clock.monotonic()))

    def close(self, timeout_s: float | None = None) -> bool:
        """Send everything still buffered, then stop; True if all output was delivered.

        With no timeout it waits as long as the API stays unreachable: the output of a
        finished job is worth an outage of any length."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._give_up.set()
            self._abandon()
            self._thread.join(1.0)
            self._log("output_abandoned", logging.WARNING, timeout_s=timeout_s)
        return not (self.stale or self.dropped)

    def _put(self, piece: _Piece) -> None:
        with self._cond:
            while not (self._abandoned or self._stored(piece)):
                self._cond.wait()
            # Wake the sender for a full batch, or to start the flush timer on a first piece.
            if len(self._pending) == 1 or self._pending_bytes >= self.flush_bytes:
                self._cond.notify_all()

    def _stored(self, piece: _Piece) -> bool:
        """Keep the piece in memory if it fits and nothing older waits on disk, else on
        disk if the spool has room; False if it must wait."""
        spooled = self._spool is not None and self._spool.unread > 0
        fits = self._pending_bytes + len(piece.data) <= self.max_pending_bytes
        if not spooled and (fits or not self._pending):
            self._pending.append(piece)
            self._pending_bytes += len(piece.data)
            return True
        if self._spool is None or self._spool.disk_bytes + len(piece.data) > self.max_spool_bytes:
            return False
        try:
            self._spool.write(piece.stream, piece.data, piece.at)
        except OSError as exc:
            # Backpressure from now on; what is spooled already is still sent.
            self._log("spool_failed", logging.ERROR, error=exc)
            self.max_spool_bytes = 0
            return False
        if not self._spilled:
            self._spilled = True
            self._log("output_spooled", logging.WARNING, max_spool_bytes=self.max_spool_bytes)
        return True

    def _refill(self) -> None:
        """Bring spooled pieces back into memory as it frees up, oldest first."""
        while self._spool is not None and (
            not self._pending or self._pending_bytes + self.flush_bytes <= self.max_pending_bytes
        ):
            try:
                read = self._spool.read()
            except OSError as exc:
                self._log("spool_unreadable", logging.ERROR, error=exc)
                self.dropped = True
                self._spool.discard()
                return
            if read is None:
                return
            stream, data, at = read
            self._pending.append(_Piece(stream, data, at, float("-inf")))
            self._pending_bytes += len(data)

    def _abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            spooled = self._spool is not None and self._spool.unread > 0
            self.dropped = self.dropped or bool(self._pending) or spooled
            self._pending.clear()
            self._pending_bytes = 0
            if self._spool is not None:
                self._spool.discard()
            self._cond.notify_all()

    def _send_loop(self) -> None:
        while (pieces := self._next_batch()) is not None:
            if not pieces:
                self._deliver([], retry_failed=False)  # only asks whether to cancel
            elif chunks := self._chunks(pieces):
                self._deliver(chunks)
        if not self._abandoned and (tail := self._tail()):
            self._deliver(tail)
        with self._cond:
            if self._spool is not None:
                self._spool.discard()

    def _next_batch(self) -> list[_Piece] | None:
        """Wait until a batch is due (64 KiB pending, 100 ms since the oldest piece, or
        closing) and take it; [] when a cancel poll is due; None once closed and empty, or
        abandoned."""
        with self._cond:
            while not self._batch_due():
                if self._abandoned or (self._closing and not self._pending):
                    return None
                if self._time_to_poll() == 0.0:
                    return []
                self._cond.wait(_earliest(self._time_to_flush(), self._time_to_poll()))
            return self._take()

    def _batch_due(self) -> bool:
        if self._abandoned or not self._pending:
            return False
        if self._closing or self._pending_bytes >= self.flush_bytes:
            return True
        return self._time_to_flush() == 0.0

    def _time_to_flush(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, self._pending[0].queued + self.flush_interval_s - clock.monotonic())

    def _time_to_poll(self) -> float | None:
        if self._pending or self.cancel_poll_s is None or self.cancel.is_set():
            return None
        return max(0.0, self._last_post + self.cancel_poll_s - clock.monotonic())

    def _take(self) -> list[_Piece]:
        """Up to flush_bytes of the oldest pieces (at least one), which frees their room."""
        taken: list[_Piece] = []
        size = 0
        while self._pending and self._room_for(taken, size):
            piece = self._pending.popleft()
            taken.append(piece)
            size += len(piece.data)
        self._pending_bytes -= size
        self._refill()
        self._cond.notify_all()
        return taken

    def _room_for(self, taken: list[_Piece], size: int) -> bool:
        return not taken or size + len(self._pending[0].data) <= self.flush_bytes

    def _chunks(self, pieces: list[_Piece]) -> list[Mapping[str, Any]]:
        """Merge adjacent pieces of one stream, decode, and number them."""
        texts = [
            (stream, self._decoders[stream].decode(bytes(data)), at)
            for stream, data, at in self._merge(pieces)
        ]
        return [self._chunk(stream, text, at) for stream, text, at in texts if text]

    def _tail(self) -> list[Mapping[str, Any]]:
        """Bytes of a character cut short at the very end, as U+FFFD."""
        texts = [
            (name, decoder.decode(b"", final=True)) for name, decoder in self._decoders.items()
        ]
        return [self._chunk(stream, text, clock.now()) for stream, text in texts if text]

    def _merge(self, pieces: list[_Piece]) -> list[tuple[str, bytearray, float]]:
        merged: list[tuple[str, bytearray, float]] = []
        for piece in pieces:
            last = merged[-1] if merged else None
            fits = last is not None and len(last[1]) + len(piece.data) <= self.flush_bytes
            if last is not None and fits and last[0] == piece.stream:
                last[1].extend(piece.data)
            else:
                merged.append((piece.stream, bytearray(piece.data), piece.at))
        return merged

    def _chunk(self, stream: str, text: str, at: float) -> dict[str, Any]:
        self._seq += 1
        return {"seq": self._seq, "stream": stream, "at": at, "data": text}

    def _deliver(self, chunks: list[Mapping[str, Any]], retry_failed: bool = True) -> None:
        """Post one batch until the API takes it; the same seqs on every try. A cancel poll
        (no chunks, retry_failed=False) is not repeated: the next poll comes soon anyway."""
        failures = 0

        def post() -> Any:
            self._last_post = clock.monotonic()
            return self.client.post_output(self.job_id, self.attempt, chunks)

        def failed(exc: ApiError, delay: float) -> None:
            nonlocal failures
            failures += 1
            if failures == 1 and retry_failed:
                self._log("output_retrying", logging.WARNING, error=exc)

        try:
            answer = retry(post, self._wait(retry_failed), backoff=self.backoff(), on_retry=failed)
        except GaveUp:
            self.dropped = self.dropped or retry_failed
            return
        except ApiError as exc:
            self._refused(exc, bool(chunks))
            return
        if failures:
            self._log("output_delivered", failures=failures)
        if isinstance(answer, dict) and answer.get("cancel"):
            self._log("cancel_requested", via="output")
            self.cancel.set()

    def _wait(self, retry_failed: bool) -> Callable[[float], bool]:
        """retry()'s wait: give up at once for a poll, else once close() gave up."""
        return lambda delay: not retry_failed or self._give_up.wait(delay)

    def _refused(self, exc: ApiError, had_chunks: bool) -> None:
        if exc.status in STALE_ATTEMPT:
            self._log("attempt_stale", logging.WARNING, status=exc.status, via="output")
            self.stale = True
            self.cancel.set()
            self._abandon()
        elif not had_chunks:
            # An API that refuses empty posts gives no answer this way: stop asking.
            self._log("cancel_poll_refused", logging.WARNING, error=exc)
            self.cancel_poll_s = None
        else:
            # Retrying a refused batch would fail the same way; the rest may still pass.
            self._log("output_refused", logging.ERROR, error=exc)
            self.dropped = True

    def _log(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(
            log,
            event,
            level,
            job=self.job_id,
            attempt=self.attempt,
            worker=self.worker_id,
            **fields,
        )


def _decoder() -> codecs.IncrementalDecoder:
    # Incremental, so a character split across two reads is decoded whole.
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _earliest(*delays: float | None) -> float | None:
    """The shortest of the delays given, None (wait for a notify) if there is none."""
    known = [delay for delay in delays if delay is not None]
    return min(known) if known else None
