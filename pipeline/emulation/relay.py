"""A UART on a child's stdin/stdout, served as a pseudo-terminal of this process.

    python -m pipeline.emulation.relay [--timeout S] COMMAND [ARG ...]

runs COMMAND (QEMU with `-serial stdio`: pipeline.emulation.qemu.serve_command), waits
until the firmware answers on that UART, prints the pty's path as its first stdout line
(as the native emulator does) and relays until SIGTERM or SIGINT, or until COMMAND exits.

Why a relay rather than QEMU's own `-serial pty`: that backend drops output and stops
reading while no process has the pty open, notices a newly opened pty only on a one-second
poll, and when a client writes a flood before reading, the firmware's answers fill the pty
(a few KB), the firmware blocks on its UART, stops reading, and the client blocks writing:
a deadlock. This process keeps the pty's slave open (clients open and close the port at
will; unread answers wait there and pyserial flushes them on open) and queues the
firmware's output without bound, so the firmware keeps reading requests. Input is never
lost: QEMU hands its UART a byte only when the one-byte receive buffer is free.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from typing import IO, Sequence

from pipeline.deadline import Deadline
from pipeline.emulation.process import EmulationError, Stop, spawn, stop, stopped_by, tail

STARTUP_TIMEOUT = 15.0  # seconds from launch until the firmware answers on its UART

# Stop taking the client's input while this much of the firmware's output waits for the
# client (as the native emulator does): far more than any test floods.
_OUT_HIGH_WATER = 16 * 1024 * 1024
_IN_HIGH_WATER = 64 * 1024


def _open_pty() -> tuple[int, int, str]:
    """A new pseudo-terminal: (master, slave, slave path). The slave is raw (no echo, no
    CR/LF translation) and stays open in this process, so the port always has a reader
    and clients can open and close it at will (as with the native emulator)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    for fd in (master, slave):
        os.set_inheritable(fd, False)
    return master, slave, os.ttyname(slave)


def _await_firmware(process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    """Sends empty lines to the UART until the firmware answers (protocol v1 answers each
    with `ERR 1 empty line`), and reads every answer to the probes it sent, so that
    nothing of them reaches a client."""
    assert process.stdin is not None and process.stdout is not None
    out_fd = process.stdout.fileno()
    deadline = Deadline(timeout)
    data = b""
    sent = 0
    next_probe = Deadline(0.0)
    while data.count(b"\r\n") < max(sent, 1):
        if deadline.expired():
            raise EmulationError(f"the firmware did not answer on its UART within {timeout:g} s "
                                 f"(it sent {data[:80]!r})")
        if next_probe.expired() and data.count(b"\r\n") == 0:
            os.write(process.stdin.fileno(), b"\n")
            sent += 1
            next_probe = Deadline(1.0)
        ready, _, _ = select.select([out_fd], [], [], min(0.1, deadline.remaining()))
        if ready:
            chunk = os.read(out_fd, 4096)
            if not chunk:
                code = process.wait()
                said = process.stderr.read() if process.stderr is not None else b""
                raise EmulationError(f"{name} exited with status {code} while starting; it said: {tail(said)}")
            data += chunk


def _keep_raw(slave: int) -> None:
    """Puts the pty back into raw mode if a client changed it (`stty -F PORT sane`): with
    echo on, the pty would return every answer to the firmware as a request. Called right
    before each write, so at most one write is echoed (and the core drops that echo). The
    client's speed, VMIN and VTIME stay as they are; the flags are those of cfmakeraw(3)."""
    try:
        now = termios.tcgetattr(slave)
    except termios.error:
        return
    iflag, oflag, cflag, lflag = now[:4]
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    if [iflag, oflag, cflag, lflag] != now[:4]:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(slave, termios.TCSANOW, [iflag, oflag, cflag, lflag, *now[4:]])


def _relay(master: int, slave: int, process: subprocess.Popen[bytes]) -> int:
    """Moves bytes between the pty and the child's UART (its stdin and stdout) until the
    child exits; returns its exit status. The firmware's output is queued without bound
    here, so the firmware never waits on a client that writes a flood before reading: it
    keeps reading requests, and every answer is kept, in order. The child's stderr goes to
    ours. The pty is kept raw (_keep_raw) before every write to it."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    to_child, from_child, child_log = process.stdin.fileno(), process.stdout.fileno(), process.stderr.fileno()
    os.set_blocking(to_child, False)
    inq = bytearray()   # client -> firmware
    outq = bytearray()  # firmware -> client
    open_fds = {from_child, child_log}
    while from_child in open_fds:
        readers = list(open_fds)
        if len(inq) < _IN_HIGH_WATER:
            readers.append(master)
        if len(outq) >= _OUT_HIGH_WATER:
            readers.remove(from_child)
        writers = ([to_child] if inq else []) + ([master] if outq else [])
        readable, writable, _ = select.select(readers, writers, [], 1.0)
        for fd in readable:
            try:
                chunk = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                if fd != master:
                    raise
                time.sleep(0.02)  # EIO: no slave side (cannot happen while we hold it)
                continue
            if fd == master:
                inq += chunk
            elif fd == from_child:
                if chunk:
                    outq += chunk
                else:
                    open_fds.discard(fd)
            elif chunk:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            else:
                open_fds.discard(fd)
        for fd in writable:
            queue = inq if fd == to_child else outq
            try:
                if fd == master:
                    _keep_raw(slave)
                sent = os.write(fd, queue)
            except (BlockingIOError, InterruptedError):
                continue
            except BrokenPipeError:  # the child is gone; its stdout ends next
                inq.clear()
                continue
            except OSError:
                if fd == master:
                    time.sleep(0.02)
                    continue
                raise
            del queue[:sent]
    return process.wait()


def run(cmd: Sequence[str], timeout: float = STARTUP_TIMEOUT, out: IO[str] | None = None) -> int:
    """Runs cmd with its UART behind a new pty of this process: prints the port on out
    (default stdout) once the firmware answers, then relays until SIGTERM/SIGINT or until
    cmd exits. Returns an exit status: 0 when stopped by a signal and cmd ended cleanly."""
    out = out or sys.stdout
    name = os.path.basename(cmd[0])
    child: subprocess.Popen[bytes] | None = None
    master = slave = -1
    with stopped_by(signal.SIGTERM, signal.SIGINT):
        try:
            master, slave, port = _open_pty()
            child = spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _await_firmware(child, name, timeout)
            print(port, file=out, flush=True)
            code = _relay(master, slave, child)
            print(f"error: {name} exited with status {code}", file=sys.stderr)
            return code or 1
        except Stop:
            if child is None:
                return 130
            code = stop(child).code
            return 0 if code in (0, -signal.SIGTERM) else code
        finally:
            if child is not None:
                stop(child)
            for fd in (master, slave):
                if fd >= 0:
                    os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.emulation.relay",
        description="Run COMMAND with its UART on stdin/stdout (e.g. qemu-system-arm ... -serial stdio) behind a "
                    "pseudo-terminal: print the port's path first, then relay until Ctrl-C or SIGTERM.")
    parser.add_argument("--timeout", type=float, default=STARTUP_TIMEOUT, metavar="SECONDS",
                        help=f"how long the firmware may take to answer on its UART (default {STARTUP_TIMEOUT:g})")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("no command given")
    try:
        return run(args.command, args.timeout)
    except EmulationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
