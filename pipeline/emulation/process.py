"""The life cycle of an emulator process, the same for every target: start it so that it
dies with the thread that started it, read the serial port it announces on its first
stdout line, stop it (SIGTERM, then SIGKILL), and leave a serve loop on SIGTERM as on Ctrl-C.

Native and QEMU differ only in the command they run (pipeline.emulation.native, .qemu);
everything a process goes through from start to stop is written here once.
"""
from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from pipeline.deadline import Deadline
from pipeline.errors import PipelineError

STOP_TIMEOUT = 5.0  # seconds a stopped emulator gets before it is killed
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
_LINE_END = re.compile(rb"\n")


class EmulationError(PipelineError):
    """Building or running an emulation failed; str() is one line for the user."""


class Stop(Exception):
    """Raised in the main thread by a stop signal, so a serve loop ends as it does on Ctrl-C."""


@contextlib.contextmanager
def stopped_by(*signals: signal.Signals) -> Iterator[None]:
    """While inside, each of signals raises Stop; the previous handlers come back afterwards."""

    def on_signal(signum: int, frame: object) -> None:
        raise Stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when the thread that started it dies,
    so a killed test run leaves no emulator serving an orphaned pty. Prepared in the parent,
    because nothing may be imported or loaded between fork and exec; None where unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


def spawn(cmd: Sequence[str], *, error: type[EmulationError] = EmulationError, **popen: Any) -> subprocess.Popen[bytes]:
    """Starts cmd as a child that dies with its starter. This package's root leads
    PYTHONPATH, so a child that is one of its modules (`python -m pipeline.emulation.relay`)
    imports this same tree whether or not it is installed."""
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=_PACKAGE_ROOT + (os.pathsep + path if path else ""))
    try:
        return subprocess.Popen(list(cmd), preexec_fn=_parent_death_signal(), env=env, **popen)
    except OSError as failure:
        raise error(f"cannot start {cmd[0]}: {failure.strerror}") from failure


@dataclass(frozen=True)
class Ending:
    """How a stopped process ended."""

    code: int
    early: bool  # it had exited before it was told to stop
    killed: bool  # it ignored SIGTERM and was killed

    def check(self, who: str, error: type[EmulationError] = EmulationError, why: str = "see its stderr") -> None:
        """A crash or a sanitizer's report shows only as the exit status: it must not pass unseen."""
        if self.killed:
            raise error(f"{who} ignored SIGTERM and was killed")
        if self.code != 0:
            how = "exited unexpectedly" if self.early else "exited"
            raise error(f"{who} {how} with status {self.code} ({why})")


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> Ending:
    """SIGTERM, then SIGKILL after timeout; closes the pipes to it either way."""
    early = process.poll() is not None
    killed = False
    if not early:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed = True
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return Ending(process.returncode, early, killed)


@dataclass(frozen=True)
class Output:
    """What read_until read: all of it, and the match, or why there is none."""

    data: bytes
    match: re.Match[bytes] | None
    ended: bool  # the stream closed before the pattern came


def read_until(process: subprocess.Popen[bytes], pattern: re.Pattern[bytes], deadline: Deadline) -> Output:
    """Reads the process's stdout until pattern matches, the stream ends, or the deadline passes."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    while True:
        match = pattern.search(data)
        if match or deadline.expired():
            return Output(data, match, False)
        ready, _, _ = select.select([fd], [], [], deadline.remaining())
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return Output(data, None, True)
        data += chunk


def tail(data: bytes) -> str:
    """The end of what a process said, on one line, for an error message."""
    text = data.decode("utf-8", "replace").strip().replace("\n", " | ")
    return text[-300:] if text else "(nothing)"


def read_port(process: subprocess.Popen[bytes], timeout: float, who: str,
              error: type[EmulationError] = EmulationError) -> str:
    """Every emulator prints its serial port's path as its first stdout line."""
    out = read_until(process, _LINE_END, Deadline(timeout))
    if out.match is None:
        if out.ended:
            raise error(f"{who} exited with status {process.wait()} before printing its port (see its stderr)")
        raise error(f"{who} printed no port within {timeout:g} s")
    port = out.data[:out.match.start()].decode("utf-8", "replace").strip()
    if not port.startswith("/"):
        raise error(f"{who} printed {port!r}, not a port path")
    return port


@dataclass
class Emulation:
    """A running emulated device: the process and the serial port it serves."""

    process: subprocess.Popen[bytes]
    port: str
    target: str
    _stopped: bool = field(default=False, repr=False)

    def stop(self, check: bool = True) -> int:
        """Ends the emulator and returns its exit status. With check, a crash or a sanitizer
        report (nonzero exit) raises, once, so tests notice firmware bugs that only show
        when the process ends."""
        ending = stop(self.process)
        first, self._stopped = not self._stopped, True
        if check and first:
            ending.check(f"{self.target} emulator", why="a crash or sanitizer report: see its stderr")
        return ending.code


def launch(cmd: Sequence[str], target: str, timeout: float,
           error: type[EmulationError] = EmulationError) -> Emulation:
    """Starts an emulator command and waits for its port line; the caller must stop() it.
    One that never served is killed at once: it has nothing to finish."""
    process = spawn(cmd, error=error, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        port = read_port(process, timeout, f"the {target} emulator", error)
    except BaseException:
        stop(process, timeout=0)
        raise
    return Emulation(process=process, port=port, target=target)
