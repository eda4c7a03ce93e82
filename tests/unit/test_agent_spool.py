"""The output spool: pieces past the memory buffer go to disk while the API is down, come
back in order once it answers, the disk they use is bounded, and a disk that fails turns
into backpressure instead of lost or reordered output."""

import threading
from pathlib import Path
from typing import Any

import pytest

from shared.client import ApiUnreachable
from shared.retry import Backoff
from tests.helpers import wait_until
from tests.unit.test_agent_output import FakeApi, streamer_for
from worker_agent.spool import Spool, clear_spools

KIB = 1024


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*")) if directory.exists() else []


def test_pieces_come_back_in_order_with_their_stream_and_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    written = [
        ("stdout" if n % 3 else "stderr", bytes([n]) * (n + 1), 1000.0 + n) for n in range(50)
    ]
    for piece in written:
        spool.write(*piece)

    read = [spool.read() for _ in range(50)]

    assert read == written
    assert spool.read() is None


def test_read_segments_are_deleted_and_a_drained_spool_frees_its_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=4 * KIB)
    for n in range(20):
        spool.write("stdout", bytes([n]) * KIB, float(n))
    segments = len(files_in(tmp_path / "spool"))
    assert segments >= 4
    assert spool.disk_bytes >= 20 * KIB

    for n in range(10):
        assert spool.read() == ("stdout", bytes([n]) * KIB, float(n))
    assert len(files_in(tmp_path / "spool")) < segments
    assert spool.disk_bytes < 15 * KIB

    for n in range(10, 20):
        assert spool.read() == ("stdout", bytes([n]) * KIB, float(n))
    assert files_in(tmp_path / "spool") == []
    assert spool.disk_bytes == 0 and spool.unread == 0


def test_writing_goes_on_after_the_spool_drained(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=KIB)
    spool.write("stdout", b"a" * 600, 1.0)
    spool.write("stdout", b"b" * 600, 2.0)
    assert spool.read() == ("stdout", b"a" * 600, 1.0)
    spool.write("stderr", b"c", 3.0)
    assert [spool.read(), spool.read(), spool.read()] == [
        ("stdout", b"b" * 600, 2.0),
        ("stderr", b"c", 3.0),
        None,
    ]


def test_a_failed_write_leaves_the_spool_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker_agent import spool as spool_module

    spool = Spool(tmp_path / "spool")
    spool.write("stdout", b"kept", 1.0)
    real = spool_module._write_all

    def half_then_fail(writer: Any, record: bytes) -> None:
        writer.write(record[: len(record) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_module, "_write_all", half_then_fail)
    with pytest.raises(OSError):
        spool.write("stdout", b"lost" * 100, 2.0)
    monkeypatch.setattr(spool_module, "_write_all", real)
    spool.write("stdout", b"after", 3.0)

    assert [spool.read(), spool.read(), spool.read()] == [
        ("stdout", b"kept", 1.0),
        ("stdout", b"after", 3.0),
        None,
    ]


def test_clear_spools_removes_what_an_earlier_run_left(tmp_path: Path) -> None:
    leftover = Spool(tmp_path / "spool" / "job.1")
    leftover.write("stdout", b"x", 1.0)
    clear_spools(tmp_path / "spool")
    assert files_in(tmp_path / "spool") == []


def test_output_spills_to_disk_while_the_api_is_down_and_arrives_in_order(
    tmp_path: Path,
) -> None:
    api = FakeApi(failures=[ApiUnreachable("connection refused")] * 30)
    spool_dir = tmp_path / "spool"
    streamer = streamer_for(
        api,
        flush_bytes=4 * KIB,
        max_pending_bytes=16 * KIB,
        flush_interval_s=0.01,
        spool_dir=spool_dir,
        max_spool_bytes=1024 * KIB,
    )
    lines = [f"line {n:05d}\n".encode() for n in range(20_000)]  # about 220 KiB

    for n, line in enumerate(lines):  # never blocks: what memory cannot hold goes to disk
        streamer.sink("stderr" if n % 1000 == 999 else "stdout", line, float(n))
    assert streamer._pending_bytes <= 16 * KIB
    assert files_in(spool_dir), "nothing was spooled"

    assert streamer.close(timeout_s=30)
    expected = b"".join(line for n, line in enumerate(lines) if n % 1000 != 999).decode()
    assert api.text("stdout") == expected
    assert api.text("stderr") == "".join(f"line {n:05d}\n" for n in range(999, 20_000, 1000))
    seqs = [chunk["seq"] for chunk in api.chunks()]
    assert seqs == list(range(1, len(seqs) + 1))
    times = [chunk["at"] for chunk in api.chunks()]
    assert times == sorted(times)
    assert not spool_dir.exists(), "the spool outlived its attempt"


def test_past_the_spool_limit_the_sink_blocks_until_the_api_takes_output(
    tmp_path: Path,
) -> None:
    api = FakeApi()
    api.gate.clear()  # the API hangs: nothing is taken
    streamer = streamer_for(
        api,
        flush_bytes=4 * KIB,
        max_pending_bytes=8 * KIB,
        flush_interval_s=0.01,
        spool_dir=tmp_path / "spool",
        max_spool_bytes=32 * KIB,
    )
    written: list[int] = []

    def produce() -> None:
        for n in range(100):
            streamer.sink("stdout", bytes([65 + n % 26]) * KIB, float(n))
            written.append(n)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    # 1 to 4 KiB in flight, up to 8 KiB in memory (less once the spool is in use: memory
    # then refills from the spool, 4 KiB at a time) and 31 pieces on disk (1 KiB and a
    # 13-byte header each): 39 to 43 pieces in all.
    wait_until(lambda: len(written) >= 39, timeout=5)
    producer.join(timeout=0.3)
    assert producer.is_alive(), "the sink never blocked"
    assert 39 <= len(written) <= 43
    assert streamer._spool is not None and streamer._spool.disk_bytes <= 32 * KIB

    api.gate.set()
    producer.join(timeout=10)
    assert streamer.close(timeout_s=10)
    assert api.text("stdout") == "".join(chr(65 + n % 26) * KIB for n in range(100))


def test_a_disk_that_fails_turns_into_backpressure_without_losing_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker_agent import spool as spool_module

    api = FakeApi()
    api.gate.clear()
    streamer = streamer_for(
        api,
        flush_bytes=KIB,
        max_pending_bytes=4 * KIB,
        flush_interval_s=0.01,
        spool_dir=tmp_path / "spool",
        max_spool_bytes=1024 * KIB,
    )
    real = spool_module._write_all
    writes = 0

    def fail_after_three(writer: Any, record: bytes) -> None:
        nonlocal writes
        writes += 1
        if writes > 3:
            raise OSError(28, "No space left on device")
        real(writer, record)

    monkeypatch.setattr(spool_module, "_write_all", fail_after_three)
    written: list[int] = []

    def produce() -> None:
        for n in range(30):
            streamer.sink("stdout", bytes([65 + n % 26]) * KIB, float(n))
            written.append(n)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    wait_until(lambda: writes > 3, timeout=5)
    producer.join(timeout=0.3)
    assert producer.is_alive(), "the sink went on although the disk failed"

    api.gate.set()
    producer.join(timeout=10)
    assert streamer.close(timeout_s=10)
    assert api.text("stdout") == "".join(chr(65 + n % 26) * KIB for n in range(30))


def test_memory_stays_bounded_while_a_long_outage_fills_the_spool(tmp_path: Path) -> None:
    api = FakeApi(failures=[ApiUnreachable("down")] * 1_000_000)
    streamer = streamer_for(
        api,
        flush_interval_s=0.01,
        backoff=lambda: Backoff(0.05, 0.05),
        spool_dir=tmp_path / "spool",
        max_spool_bytes=64 * 1024 * KIB,
    )
    block = b"x" * (64 * KIB)
    most = 0

    def produce() -> None:
        nonlocal most
        for n in range(512):  # 32 MiB
            streamer.sink("stdout", block, float(n))
            most = max(most, streamer._pending_bytes)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    producer.join(timeout=60)
    assert not producer.is_alive(), "the sink blocked: the spool did not take the output"
    assert most <= streamer.max_pending_bytes
    assert streamer._spool is not None and streamer._spool.disk_bytes >= 30 * 1024 * KIB

    assert streamer.close(timeout_s=0.5) is False  # still down: given up, files removed
    assert files_in(tmp_path / "spool") == []
