"""Queries per second through the emulated serial link, against a raw pty echo as the ceiling.

The echo answers each line with the line itself, and `q 5` echoed is a valid `q`
answer, so the same client code runs both links: the ratio isolates what the firmware
core and its event loop cost on top of the pseudo-terminal.

    python benchmarks/serial_throughput.py [--queries N] [--window W] [--repeat R] [--port PORT]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.device.serial_client import Device  # noqa: E402

ECHO_C = r"""
#define _DEFAULT_SOURCE 1
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>
int main(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY), s;
  struct termios t;
  char buf[4096];
  if (m < 0 || grantpt(m) || unlockpt(m)) return 1;
  s = open(ptsname(m), O_RDWR | O_NOCTTY); /* held open: no hangup between clients */
  if (s < 0 || tcgetattr(s, &t)) return 1;
  cfmakeraw(&t);
  tcsetattr(s, TCSANOW, &t);
  printf("%s\n", ptsname(m));
  fflush(stdout);
  for (;;) {
    ssize_t n = read(m, buf, sizeof buf), off = 0;
    if (n <= 0) { usleep(1000); continue; }
    while (off < n) { ssize_t w = write(m, buf + off, (size_t)(n - off)); if (w > 0) off += w; }
  }
}
"""

ECHO_PY = r"""
import os, pty, sys, tty
m, s = pty.openpty()
tty.setraw(s)
print(os.ttyname(s), flush=True)
while True:
    data = os.read(m, 4096)
    while data:
        data = data[os.write(m, data):]
"""


@contextlib.contextmanager
def _serving(command: list[str]) -> Iterator[str]:
    """Starts a process that prints its pty path first, yields the path, stops the process."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        port = process.stdout.readline().strip() if process.stdout else ""
        if not port:
            raise RuntimeError(f"{command[0]} printed no pty path")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def echo_port() -> Iterator[tuple[str, str]]:
    """A raw-mode pty whose other end echoes every byte: C if a compiler exists, else Python."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    with tempfile.TemporaryDirectory() as scratch:
        if compiler:
            source, binary = Path(scratch, "echo.c"), Path(scratch, "echo")
            source.write_text(ECHO_C)
            built = subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], capture_output=True)
            if built.returncode == 0:
                with _serving([str(binary)]) as port:
                    yield port, "C echo"
                return
        with _serving([sys.executable, "-c", ECHO_PY]) as port:
            yield port, "Python echo"


def modes(device: Device, queries: int, window: int) -> dict[str, Callable[[], object]]:
    """Three ways to ask: float `predict` and `q` one at a time, and pipelined `q`."""
    rows = [[(i % 256) - 128] for i in range(queries)]
    return {
        "predict, one at a time": lambda: [device.predict([float(i % 13)]) for i in range(queries)],
        "q, one at a time": lambda: [device.predict_codes(r) for r in rows],
        f"q, pipelined (window {window})": lambda: device.predict_codes_many(rows, window),
    }


def measure(ports: dict[str, str], queries: int, window: int, repeat: int) -> dict[str, dict[str, float]]:
    """Queries per second per link and mode, the best of `repeat` runs; the links take turns,
    so a busy moment on the machine hits both alike."""
    with contextlib.ExitStack() as stack:
        devices = {name: stack.enter_context(Device(port, timeout=5.0)) for name, port in ports.items()}
        runs = {name: modes(device, queries, window) for name, device in devices.items()}
        for device in devices.values():
            device.predict_codes_many([[0]] * window, window)  # warm up both ends
        best: dict[str, dict[str, float]] = {name: {} for name in ports}
        for _ in range(repeat):
            for name, by_mode in runs.items():
                for mode, run in by_mode.items():
                    start = time.perf_counter()
                    run()
                    seconds = time.perf_counter() - start
                    best[name][mode] = max(best[name].get(mode, 0.0), queries / seconds)
        return best


def raw_rates(port: str, queries: int, window: int, repeat: int) -> dict[str, float]:
    """The pty echo with no client at all (os.read/os.write on a raw tty): what the kernel's
    pty alone allows, to tell client overhead from link cost."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        line = b"q -128\n"

        def read_lines(count: int) -> None:
            seen = 0
            while seen < count:
                seen += os.read(fd, 65536).count(b"\n")

        def one_at_a_time() -> None:
            for _ in range(queries):
                os.write(fd, line)
                read_lines(1)

        def pipelined() -> None:
            done = 0
            while done < queries:
                batch = min(window, queries - done)
                os.write(fd, line * batch)
                read_lines(batch)
                done += batch

        best = {"q, one at a time": 0.0, f"q, pipelined (window {window})": 0.0}
        for _ in range(repeat):
            for mode, run in zip(best, (one_at_a_time, pipelined)):
                start = time.perf_counter()
                run()
                best[mode] = max(best[mode], queries / (time.perf_counter() - start))
        return best
    finally:
        os.close(fd)


@contextlib.contextmanager
def device_port(port: str | None) -> Iterator[tuple[str, str]]:
    """The given port, or a freshly started native emulation."""
    if port:
        yield port, port
        return
    from pipeline.emulation.emulate import emulated_device  # the emulation builds on first use
    with emulated_device("native") as emulated:
        yield emulated, "native emulation"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure protocol-v1 queries per second through the emulated serial link "
                    "(or a given port) and through a raw pty echo, the ceiling for any device "
                    "behind a pseudo-terminal; prints both and their ratio.")
    parser.add_argument("--queries", type=int, default=2000, help="queries per run (default 2000)")
    parser.add_argument("--window", type=int, default=32, help="requests in flight when pipelined (default 32)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best counts (default 5)")
    parser.add_argument("--port", help="benchmark this serial port instead of the native emulation")
    args = parser.parse_args()
    if args.queries < 1 or args.window < 1 or args.repeat < 1:
        parser.error("--queries, --window and --repeat must be at least 1")

    with echo_port() as (echo, echo_name), device_port(args.port) as (port, device_name):
        rates = measure({device_name: port, echo_name: echo}, args.queries, args.window, args.repeat)
        raw = raw_rates(echo, args.queries, args.window, args.repeat)

    print(f"{args.queries} queries per run, best of {args.repeat}; ratio = device / echo, "
          "both through pipeline.device.serial_client")
    print(f"{'':30}{device_name:>18}{echo_name:>14}{'ratio':>8}")
    for mode, rate in rates[device_name].items():
        ceiling = rates[echo_name][mode]
        print(f"{mode:30}{rate:14,.0f} q/s{ceiling:10,.0f} q/s{rate / ceiling:8.2f}")
    print(f"{echo_name} without the client (raw os.read/os.write):")
    for mode, rate in raw.items():
        print(f"{mode:30}{'':18}{rate:10,.0f} q/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
