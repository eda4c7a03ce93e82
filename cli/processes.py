"""Child processes for `jobyard up`: start them, copy their output with a name prefix, stop them.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches only `jobyard up`,
which then stops the children in reverse start order: SIGTERM, a grace period, SIGTERM
again (the agent then cancels its jobs), a grace period, SIGKILL.
On Linux each child also gets SIGTERM if `jobyard up` itself dies without cleaning up.
"""

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

_PR_SET_PDEATHSIG = 1
# Seconds after the first SIGTERM and after the second one before SIGKILL.
STOP_GRACE_S = (5.0, 10.0)


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask for SIGTERM when the parent dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    capture: bool = False,
) -> "subprocess.Popen[bytes]":
    """Start a child in its own process group; with capture, stdout+stderr come back as a pipe."""
    return subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
        process_group=0,
        preexec_fn=_die_with_parent,
    )


def _send(process: "subprocess.Popen[bytes]", signum: int, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


def _wait(
    process: "subprocess.Popen[bytes]",
    timeout_s: float,
    idle: Callable[[float], None],
    hurry: Callable[[], bool],
) -> None:
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline and not hurry():
        idle(0.05)


def stop_process(
    process: "subprocess.Popen[bytes]",
    grace_s: Sequence[float] = STOP_GRACE_S,
    idle: Callable[[float], None] = time.sleep,
    hurry: Callable[[], bool] = lambda: False,
) -> int:
    """SIGTERM once per grace period (waiting it out, calling idle meanwhile), then SIGKILL the
    whole group. The worker agent drains on the first SIGTERM and cancels its jobs on the next."""
    for timeout_s in grace_s:
        if process.poll() is not None:
            break
        _send(process, signal.SIGTERM)
        _wait(process, timeout_s, idle, hurry)
    if process.poll() is None:
        _send(process, signal.SIGKILL, group=True)
    return process.wait()


@dataclass
class Child:
    name: str
    process: "subprocess.Popen[bytes]"
    pending: bytes = b""

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


@dataclass
class Supervisor:
    """Owns the children of `jobyard up`; `idle` both waits and copies their output."""

    out: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    children: list[Child] = field(default_factory=list)
    hurried: bool = False
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        child = self.adopt(name, spawn(argv, env, capture=True))
        assert child.process.stdout is not None
        os.set_blocking(child.process.stdout.fileno(), False)
        self._selector.register(child.process.stdout, selectors.EVENT_READ, child)
        return child

    def adopt(self, name: str, process: "subprocess.Popen[bytes]") -> Child:
        child = Child(name, process)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if child.returncode is not None), None)

    def idle(self, timeout_s: float) -> None:
        """Wait up to timeout_s, copying whatever the children print meanwhile."""
        if not self._selector.get_map():
            time.sleep(timeout_s)
            return
        for key, _ in self._selector.select(timeout_s):
            self._copy(key.data)

    def _copy(self, child: Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        try:
            data = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:  # end of file: the child and everything it started have closed the pipe
            self._selector.unregister(stream)
            data = b"\n" if child.pending else b""
        lines = (child.pending + data).split(b"\n")
        child.pending = lines.pop()
        prefix = f"{child.name:<9} | ".encode()
        with contextlib.suppress(OSError, ValueError):  # our own stdout closed: keep draining
            self.out.write(b"".join(prefix + line + b"\n" for line in lines))
            self.out.flush()

    def hurry(self) -> None:
        """A second Ctrl-C: stop waiting for graceful exits."""
        self.hurried = True

    def stop_all(self) -> None:
        for child in reversed(self.children):
            stop_process(child.process, idle=self.idle, hurry=lambda: self.hurried)
        for _ in range(20):  # pick up the last lines the children printed while stopping
            if not self._selector.get_map():
                break
            self.idle(0.05)
