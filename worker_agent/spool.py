"""The on-disk tail of one attempt's output buffer: pieces the API could not take yet, kept
in order in append-only segment files under the agent's state directory, so a long outage
of the control plane costs disk, not memory. Fully read segments are deleted at once."""

import contextlib
import os
import shutil
import struct
from collections import deque
from pathlib import Path
from typing import BinaryIO

MIB = 1024 * 1024
SEGMENT_BYTES = 8 * MIB
STREAMS = ("stdout", "stderr")
# Per piece: stream index, the epoch time it was read, the data's length.
_HEADER = struct.Struct("<BdI")


class Spool:
    """FIFO of (stream, data, at) pieces on disk; one instance per attempt, one thread at a
    time (the output streamer calls it under its lock).

    `disk_bytes` counts what the live segments hold, read or not, which is what the disk
    really pays: the streamer keeps it under its limit.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.unread = 0  # pieces written and not read yet
        self.disk_bytes = 0
        self._segments: deque[Path] = deque()
        self._next_segment = 0
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None

    def write(self, stream: str, data: bytes, at: float) -> None:
        """Append one piece; an OSError (disk full) leaves the spool as it was."""
        writer = self._writer_with_room()
        record = _HEADER.pack(STREAMS.index(stream), at, len(data)) + data
        end = writer.tell()
        try:
            _write_all(writer, record)
        except OSError:
            # Cut off a partial record, so the segment stays readable.
            writer.truncate(end)
            writer.seek(end)
            raise
        self.disk_bytes += len(record)
        self.unread += 1

    def read(self) -> tuple[str, bytes, float] | None:
        """The oldest unread piece, or None when everything written has been read."""
        if not self.unread:
            return None
        reader = self._current_reader()
        header = reader.read(_HEADER.size)
        while not header:  # the end of a finished segment: on to the next one
            self._drop_oldest_segment()
            reader = self._current_reader()
            header = reader.read(_HEADER.size)
        stream, at, size = _HEADER.unpack(header)
        data = reader.read(size)
        self.unread -= 1
        if not self.unread:
            self._reset()
        return STREAMS[stream], data, at

    def discard(self) -> None:
        """Forget everything: close and delete the files."""
        self._reset()
        self.unread = 0
        shutil.rmtree(self.directory, ignore_errors=True)

    def _writer_with_room(self) -> BinaryIO:
        if self._writer is None or self._writer.tell() >= self.segment_bytes:
            if self._writer is not None:
                self._writer.close()
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{self._next_segment:08d}.out"
            self._next_segment += 1
            self._segments.append(path)
            # Unbuffered: the reader is another handle and must see every whole record.
            self._writer = open(path, "wb", buffering=0)  # noqa: SIM115 - closed on rotation
        return self._writer

    def _current_reader(self) -> BinaryIO:
        if self._reader is None:
            self._reader = open(self._segments[0], "rb")  # noqa: SIM115 - closed when read
        return self._reader

    def _drop_oldest_segment(self) -> None:
        assert self._reader is not None
        self._reader.close()
        self._reader = None
        oldest = self._segments.popleft()
        self.disk_bytes -= oldest.stat().st_size
        oldest.unlink()

    def _reset(self) -> None:
        """Everything written has been read: delete every segment and start afresh."""
        for handle in (self._reader, self._writer):
            if handle is not None:
                handle.close()
        self._reader = self._writer = None
        for path in self._segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._segments.clear()
        self.disk_bytes = 0


def _write_all(writer: BinaryIO, record: bytes) -> None:
    view = memoryview(record)
    while view:
        written = writer.write(view) or 0
        view = view[written:]


def clear_spools(directory: Path) -> None:
    """Remove what an earlier run left: its attempts were killed with it, as orphans."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700, exist_ok=True)
