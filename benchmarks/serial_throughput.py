"""Queries per second through the emulated serial link, against a raw pty echo as the ceiling.

The echo answers each line with the line itself, and `q 5` echoed is a valid `q`
answer, so the same client code runs both links: the ratio isolates what the firmware
core and its event loop cost on top of the pseudo-terminal.

    python benchmarks/serial_throughput.py [--queries N] [--window W] [--repeat R] [--port PORT]

With --wide, queries per second of a 714-input model (an IMU window, 119 samples x 6
axes: each query several kB, parsed by the firmware as it arrives) next to the 1-input
seed model in firmware/model, on the same emulation target, in the same run, and their
ratio. The wide model is built into a temporary folder from a seeded CSV (TensorFlow
needed) unless --wide-model names a build folder.

    python benchmarks/serial_throughput.py --wide [--target native|qemu] [--wide-model DIR]
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

from pipeline.device.serial_client import Device, _format_values  # noqa: E402

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


def imu_csv(path: Path, per_class: int = 60, seed: int = 7) -> Path:
    """Five classes of noisy six-axis windows (119 samples, row-major), a label per row."""
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, 119)
    rows = []
    for k, label in enumerate(("idle", "wave", "punch", "flex", "circle")):
        for _ in range(per_class):
            phase = rng.uniform(0.0, 2 * np.pi)
            window = np.stack([(0.5 + 0.3 * k) * np.sin(2 * np.pi * (1 + k) * t + phase + axis) * (1 if axis % 2 else 0.5)
                               for axis in range(6)], axis=1) + rng.normal(0.0, 0.3, size=(119, 6))
            rows.append(",".join(f"{v:.3f}" for v in window.ravel()) + "," + label)
    path.write_text("\n".join(rows[i] for i in rng.permutation(len(rows))) + "\n", encoding="ascii")
    return path


@contextlib.contextmanager
def wide_model(given: str | None) -> Iterator[Path]:
    """The given build folder, or a 714-input classifier built now into a temporary one."""
    if given:
        yield Path(given)
        return
    from pipeline import build
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch, "model")
        status = build.main(["-q", "--no-footprint", "--data", str(imu_csv(Path(scratch, "imu.csv"))),
                             "--hidden", "50,15", "--activation", "relu", "--optimizer", "adam", "--lr", "0.001",
                             "--epochs", "50", "--out", str(out), "--report-dir", str(Path(scratch, "report"))])
        if status != 0:
            raise SystemExit(f"building the 714-input model failed (status {status})")
        yield out


def model_rates(device: Device, model_dir: Path, queries: int, window: int, repeat: int) -> dict[str, float]:
    """Queries per second for one model: values and `q` one at a time, `q` pipelined; the
    rows are seeded random codes (and their values), so every field is a real input."""
    import numpy as np
    from pipeline.device import deployed
    model = deployed.load(model_dir)
    rng = np.random.default_rng(3)
    codes = rng.integers(-128, 128, size=(queries, model.inputs)).astype(np.int8)
    xs = model.input_values(codes)
    rows = codes.tolist()
    runs = {
        "predict, one at a time": lambda: [device.predict(x.tolist()) for x in xs],
        "q, one at a time": lambda: [device.predict_codes(r) for r in rows],
        f"q, pipelined (window {window})": lambda: device.predict_codes_many(rows, window),
    }
    device.predict_codes_many(rows[:window], window)  # warm up
    best: dict[str, float] = {}
    for _ in range(repeat):
        for mode, run in runs.items():
            start = time.perf_counter()
            run()
            best[mode] = max(best.get(mode, 0.0), queries / (time.perf_counter() - start))
    best["q line bytes"] = float(np.mean([len(Device._q_line(r)) + 1 for r in rows]))
    best["value line bytes"] = float(np.mean([len(" ".join(_format_values(x))) + 1 for x in xs]))
    return best


def wide_main(args: argparse.Namespace) -> int:
    """--wide: the 714-input model next to the seed model on one target, in one run."""
    from pipeline.emulation.emulate import emulated_device
    from pipeline.paths import MODEL_DIR
    seed_queries = args.queries if args.queries_given else (200 if args.target == "qemu" else 2000)
    wide_queries = max(10, seed_queries // (20 if args.target == "qemu" else 10))
    rates = {}
    with wide_model(args.wide_model) as wide_dir:
        for name, model_dir, queries in (("1 input (seed)", MODEL_DIR, seed_queries),
                                         ("714 inputs", wide_dir, wide_queries)):
            with emulated_device(args.target, model_dir=model_dir, timeout=120.0) as port, \
                    Device(port, timeout=30.0) as device:
                inputs = device.identify().inputs
                rates[name] = model_rates(device, model_dir, queries, args.window, args.repeat)
                rates[name]["inputs"] = inputs
                rates[name]["queries"] = queries
    seed, wide = rates["1 input (seed)"], rates["714 inputs"]
    print(f"{args.target}: queries per second, best of {args.repeat}; {int(seed['queries'])} queries per run "
          f"for {int(seed['inputs'])} input, {int(wide['queries'])} for {int(wide['inputs'])}; "
          f"a q line is {seed['q line bytes']:.0f} vs {wide['q line bytes']:.0f} bytes, a value line "
          f"{seed['value line bytes']:.0f} vs {wide['value line bytes']:.0f}")
    wide_name = f"{int(wide['inputs'])} inputs"
    print(f"{'':30}{'1 input':>14}{wide_name:>14}{'ratio':>8}{'kB/s in':>10}")
    for mode in (m for m in seed if m not in ("q line bytes", "value line bytes", "inputs", "queries")):
        kbs = wide[mode] * wide["q line bytes" if mode.startswith("q") else "value line bytes"] / 1000
        print(f"{mode:30}{seed[mode]:10,.1f} q/s{wide[mode]:10,.1f} q/s{wide[mode] / seed[mode]:8.4f}"
              f"{kbs:10,.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Measure protocol-v1 queries per second through the emulated serial link "
                    "(or a given port) and through a raw pty echo, the ceiling for any device "
                    "behind a pseudo-terminal; prints both and their ratio.")
    parser.add_argument("--queries", type=int, default=2000, help="queries per run (default 2000)")
    parser.add_argument("--window", type=int, default=32, help="requests in flight when pipelined (default 32)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best counts (default 5)")
    parser.add_argument("--port", help="benchmark this serial port instead of the native emulation")
    parser.add_argument("--wide", action="store_true",
                        help="a 714-input model next to the 1-input seed model, same target, one run")
    parser.add_argument("--target", choices=("native", "qemu"), default="native",
                        help="with --wide: the emulation to run both models on (default native)")
    parser.add_argument("--wide-model", metavar="DIR",
                        help="with --wide: a build folder of the wide model (default: build one now)")
    args = parser.parse_args()
    args.queries_given = any(a == "--queries" or a.startswith("--queries=") for a in sys.argv[1:])
    if args.queries < 1 or args.window < 1 or args.repeat < 1:
        parser.error("--queries, --window and --repeat must be at least 1")
    if args.wide:
        return wide_main(args)

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
