"""The firmware on an emulated Cortex-M4: arm-none-eabi-gcc build, run on qemu-system-arm.

The image is the board's firmware with only the platform layer swapped
(firmware/platform/qemu: start-up, CMSDK UART, timer clock, main loop): the same core,
engine and emitted model sources, compiled with the Nano 33 BLE's CPU flags, run on
QEMU's `mps2-an386` machine (a Cortex-M4 with FPU). Its UART0 is a pseudo-terminal on
this host, so the project's client, tests and tools talk to it like to the board.

Python API::

    elf = build()                          # build/qemu/tinyml_qemu.elf, incremental
    process, port = start(elf)             # serving; port is e.g. /dev/pts/5
    ...serial.Serial(port)...
    stop(process)

    with running(elf, icount=True) as port: ...   # deterministic time: 1 ns per instruction

Command line::

    python -m pipeline.emulation.qemu build                 # prints the ELF path
    python -m pipeline.emulation.qemu run [--icount] [ELF]  # prints the port first, serves until Ctrl-C
    python -m pipeline.emulation.qemu command [--icount] [ELF]

How the serial port is made: QEMU's UART0 is on its stdin/stdout (-serial stdio), and
`run` (which start() launches) relays it to a pseudo-terminal of its own, as the native
emulator does. Why not QEMU's `-serial pty`: that backend drops output and stops reading
while no process has the pty open, notices a newly opened pty only on a one-second poll,
and when a client writes a flood before reading, the firmware's answers fill the pty
(a few KB) and the firmware blocks on its UART, so it stops reading, so the client
blocks writing: a deadlock. The relay keeps the pty's slave open (clients open and close
the port at will; unread answers wait there and pyserial flushes them on open) and queues
the firmware's output without bound, so it keeps reading requests. Input is never lost:
QEMU hands the UART a byte only when its one-byte receive buffer is free. Before printing
the port, `run` checks that the firmware answers on its UART. command(elf) still gives
the plain `-serial pty` command line, for use by hand.

For pipeline/emulate.py, QemuTarget has the shape of its Target protocol: its command
prints the port as the first stdout line, like the native emulator.
"""
from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a script (serve_command): the
    import os.path  # repo, not pipeline/, goes first on the path, so siblings never shadow

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import termios
import time
import tty
from pathlib import Path
from typing import IO, Iterator, Sequence

from pipeline.emulation import cmake_build
from pipeline.paths import BUILD_ROOT, FIRMWARE_DIR, MODEL_DIR

SOURCE_DIR = FIRMWARE_DIR / "platform" / "qemu"
TOOLCHAIN_FILE = SOURCE_DIR / "toolchain-arm.cmake"
DEFAULT_MODEL_DIR = MODEL_DIR
BUILD_DIR = BUILD_ROOT / "qemu"

DEBIAN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
TFLM_PACKAGE = "libstdc++-arm-none-eabi-newlib"
"""The C++ standard headers the TFLM engine's image needs (`<cstdarg>`): only a Recommends of newlib."""
CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
MACHINE = "mps2-an386"
QEMU = "qemu-system-arm"
ARM_GCC = "arm-none-eabi-gcc"
ARM_GXX = "arm-none-eabi-g++"

# Images firmware/platform/qemu/CMakeLists.txt builds.
IMAGES = ("tinyml_qemu", "tinyml_qemu_null", "tinyml_qemu_crash", "tinyml_qemu_fault",
          "tinyml_qemu_measure", "tinyml_qemu_tflm", "tinyml_qemu_tflm_measure")
# The native emulator's program names (pipeline/emulate.py) and their QEMU images.
PROGRAMS = {"tinyml_device": "tinyml_qemu", "tinyml_device_fault": "tinyml_qemu_fault"}

STARTUP_TIMEOUT = 15.0  # seconds from launch until the firmware answers on its pty
STOP_TIMEOUT = 5.0


class QemuError(RuntimeError):
    """Building or running the QEMU image failed; str() is one line for the user."""


# ---- toolchain --------------------------------------------------------------------------


def _install_hint(missing: str, packages: str = DEBIAN_PACKAGES) -> str:
    return f"{missing}: install the Debian packages {packages} (sudo apt-get install {packages})"


def toolchain_problem(tflm: bool = False) -> str | None:
    """None when the cross toolchain (gcc + newlib-nano) and CMake are usable, else why not.
    tflm: also the C++ compiler and its standard headers, which the TFLM engine's image needs."""
    gcc = shutil.which(ARM_GCC)
    if gcc is None:
        return _install_hint(f"{ARM_GCC} not found")
    try:
        found = subprocess.run([gcc, *CPU_FLAGS, "--specs=nano.specs", "-print-file-name=libc_nano.a"],
                               capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return _install_hint(f"{ARM_GCC} does not run ({error})")
    if not os.path.isabs(found) or not os.path.isfile(found):
        return _install_hint("newlib-nano (libc_nano.a) not found for the Cortex-M4F")
    if shutil.which("cmake") is None or shutil.which("make") is None:
        return "cmake and make not found on PATH: install CMake 3.16 or newer and make (apt-get install cmake make)"
    if tflm:
        return _cxx_problem()
    return None


def _cxx_problem() -> str | None:
    gxx = shutil.which(ARM_GXX)
    if gxx is None:
        return _install_hint(f"{ARM_GXX} not found", f"gcc-arm-none-eabi {TFLM_PACKAGE}")
    try:
        run = subprocess.run([gxx, *CPU_FLAGS, "--specs=nano.specs", "-x", "c++", "-fsyntax-only", "-"],
                             input="#include <cstdarg>\n#include <cstdint>\n", capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return _install_hint(f"{ARM_GXX} does not run ({error})", TFLM_PACKAGE)
    if run.returncode != 0:
        return _install_hint("the C++ standard headers for the Cortex-M4 are missing (<cstdarg>)", TFLM_PACKAGE)
    return None


def qemu_problem() -> str | None:
    """None when qemu-system-arm is installed (and emulates mps2-an386), else why not."""
    exe = shutil.which(QEMU)
    if exe is None:
        return _install_hint(f"{QEMU} not found")
    try:
        machines = subprocess.run([exe, "-M", "help"], capture_output=True, text=True, timeout=30,
                                  check=False).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return _install_hint(f"{QEMU} does not run ({error})")
    if MACHINE not in machines:
        return f"{QEMU} has no {MACHINE} machine: install a QEMU with MPS2 support (Debian's qemu-system-arm)"
    return None


# ---- build --------------------------------------------------------------------------------


def build(build_dir: Path | None = None, *, image: str = "tinyml_qemu", model_dir: Path | None = None,
          tflm_root: Path | None = None, verbose: bool = False) -> Path:
    """Builds one image (incrementally; CMake is configured once per directory) and returns
    its ELF. build_dir defaults to build/qemu; use one directory per model_dir (the emitted
    model sources, default firmware/model) or tflm_root (a TFLM tree: enables the
    tinyml_qemu_tflm* images). Raises QemuError, naming the Debian packages when the
    toolchain is missing."""
    if image not in IMAGES:
        raise QemuError(f"unknown QEMU image {image!r} (choose from {', '.join(IMAGES)})")
    problem = toolchain_problem(tflm=tflm_root is not None)
    if problem:
        raise QemuError(problem)
    build_dir = Path(build_dir or BUILD_DIR).resolve()
    model_dir = Path(model_dir or DEFAULT_MODEL_DIR).resolve()
    if not (model_dir / "model_aot.c").is_file() or not (model_dir / "model_info.h").is_file():
        raise QemuError(f"{model_dir}: no emitted model (model_aot.c, model_info.h): run python -m pipeline.build")
    tflm = ""
    if tflm_root is not None:
        tflm_path = Path(tflm_root).resolve()
        if not tflm_path.is_dir():
            raise QemuError(f"TFLM root {tflm_path} is not a directory")
        tflm = str(tflm_path)
    if image.startswith("tinyml_qemu_tflm") and not tflm:
        raise QemuError(f"{image} needs a TFLM source tree (tflm_root or TFLM_ROOT)")
    cmake = shutil.which("cmake")
    assert cmake is not None  # toolchain_problem checked
    settings = {"source": str(SOURCE_DIR), "model_dir": str(model_dir), "tflm_root": tflm,
                "gcc": shutil.which(ARM_GCC)}
    try:
        cmake_build.build(cmake, SOURCE_DIR, build_dir, settings,
                          [f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_FILE}", f"-DTINYML_MODEL_DIR={model_dir}", f"-DTFLM_ROOT={tflm}"],
                          image, "the QEMU firmware", verbose)
    except cmake_build.BuildError as error:
        raise QemuError(str(error)) from None
    elf = build_dir / f"{image}.elf"
    if not elf.is_file():
        raise QemuError(f"the build finished but {elf} is missing")
    return elf


# ---- run ------------------------------------------------------------------------------------


def command(elf: Path, icount: bool = False, serial: str = "pty") -> list[str]:
    """The qemu-system-arm command line that runs elf with UART0 on serial ("pty": a new
    pseudo-terminal, announced on QEMU's output as "char device redirected to /dev/pts/N
    (label serial0)"; "stdio"; or any other -serial backend). icount: `-icount shift=0`,
    so virtual time advances exactly 1 ns per executed instruction."""
    cmd = [QEMU, "-M", MACHINE, "-nographic", "-monitor", "none", "-serial", serial,
           "-kernel", str(Path(elf).resolve())]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd


def serve_command(elf: Path, icount: bool = False) -> list[str]:
    """A command that runs elf behind a pty and prints the port as its first stdout line
    (like the native emulator), then serves until SIGTERM/SIGINT: `run` below."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "run", str(Path(elf).resolve())]
    if icount:
        cmd.append("--icount")
    return cmd


def _die_with_parent() -> None:
    """In a child: have Linux SIGTERM it when its parent dies (no orphaned emulators)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _preexec() -> object:
    return _die_with_parent if sys.platform.startswith("linux") else None


def _read_until(stream: IO[bytes], pattern: re.Pattern[bytes], timeout: float, what: str,
                process: subprocess.Popen[bytes]) -> tuple[re.Match[bytes], bytes]:
    """Reads stream until pattern matches; returns the match and everything read."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        match = pattern.search(data)
        if match:
            return match, data
        left = deadline - time.monotonic()
        if left <= 0:
            raise QemuError(f"{what} within {timeout:g} s; QEMU said: {_tail(data)}")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            code = process.wait()
            raise QemuError(f"QEMU exited with status {code} before {what.split(' (')[0]}; "
                            f"it said: {_tail(data)}")
        data += chunk


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip().replace("\n", " | ")
    return text[-300:] if text else "(nothing)"


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


def _await_firmware(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Sends empty lines to the UART until the firmware answers (protocol v1 answers each
    with `ERR 1 empty line`), and reads every answer to the probes it sent, so that
    nothing of them reaches a client."""
    assert process.stdin is not None and process.stdout is not None
    out_fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    sent = 0
    next_probe = 0.0
    while data.count(b"\r\n") < max(sent, 1):
        now = time.monotonic()
        if now >= deadline:
            raise QemuError(f"the firmware did not answer on its UART within {timeout:g} s "
                            f"(it sent {data[:80]!r})")
        if now >= next_probe and data.count(b"\r\n") == 0:
            os.write(process.stdin.fileno(), b"\n")
            sent += 1
            next_probe = now + 1.0
        ready, _, _ = select.select([out_fd], [], [], min(0.1, max(deadline - now, 0.0)))
        if ready:
            chunk = os.read(out_fd, 4096)
            if not chunk:
                code = process.wait()
                said = process.stderr.read() if process.stderr is not None else b""
                raise QemuError(f"QEMU exited with status {code} while starting; it said: {_tail(said)}")
            data += chunk


# Stop taking the client's input while this much of the firmware's output waits for the
# client (as the native emulator does): far more than any test floods.
_OUT_HIGH_WATER = 16 * 1024 * 1024
_IN_HIGH_WATER = 64 * 1024


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
    """Moves bytes between the pty and QEMU's UART (its stdin and stdout) until QEMU exits;
    returns QEMU's exit status. The firmware's output is queued without bound here, so the
    firmware never waits on a client that writes a flood before reading: it keeps reading
    requests, and every answer is kept, in order. QEMU only hands the UART a byte when its
    one-byte receive buffer is free, so input waits in the pipe, never overruns. The pty
    is kept raw (_keep_raw) before every write to it."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    to_qemu, from_qemu, qemu_log = process.stdin.fileno(), process.stdout.fileno(), process.stderr.fileno()
    os.set_blocking(to_qemu, False)
    inq = bytearray()   # client -> firmware
    outq = bytearray()  # firmware -> client
    open_fds = {from_qemu, qemu_log}
    while from_qemu in open_fds:
        readers = list(open_fds)
        if len(inq) < _IN_HIGH_WATER:
            readers.append(master)
        if len(outq) >= _OUT_HIGH_WATER:
            readers.remove(from_qemu)
        writers = ([to_qemu] if inq else []) + ([master] if outq else [])
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
            elif fd == from_qemu:
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
            queue = inq if fd == to_qemu else outq
            try:
                if fd == master:
                    _keep_raw(slave)
                sent = os.write(fd, queue)
            except (BlockingIOError, InterruptedError):
                continue
            except BrokenPipeError:  # QEMU is gone; its stdout ends next
                inq.clear()
                continue
            except OSError:
                if fd == master:
                    time.sleep(0.02)
                    continue
                raise
            del queue[:sent]
    return process.wait()


def _stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL after timeout; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class _Stop(Exception):
    pass


def run(elf: Path, icount: bool = False, timeout: float = STARTUP_TIMEOUT, out: IO[str] | None = None) -> int:
    """Runs elf under QEMU with its UART0 behind a new pty of this process: prints the
    port on out (default stdout) once the firmware answers, then relays until
    SIGTERM/SIGINT or until QEMU exits. Returns an exit status: 0 when stopped by a
    signal and QEMU ended cleanly."""
    problem = qemu_problem()
    if problem:
        raise QemuError(problem)
    elf = Path(elf)
    if not elf.is_file():
        raise QemuError(f"{elf}: no such firmware image (build it: python -m pipeline.emulation.qemu build)")
    out = out or sys.stdout

    def on_signal(signum: int, frame: object) -> None:
        raise _Stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    process: subprocess.Popen[bytes] | None = None
    master = slave = -1
    try:
        master, slave, port = _open_pty()
        process = subprocess.Popen(command(elf, icount, serial="stdio"), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_preexec())
        _await_firmware(process, timeout)
        print(port, file=out, flush=True)
        code = _relay(master, slave, process)
        print(f"error: QEMU exited with status {code}", file=sys.stderr)
        return code or 1
    except _Stop:
        if process is None:
            return 130
        code = _stop_process(process)
        return 0 if code in (0, -signal.SIGTERM) else code
    finally:
        if process is not None:
            if process.poll() is None:
                _stop_process(process)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start(elf: Path | None = None, *, icount: bool = False,
          timeout: float = STARTUP_TIMEOUT) -> tuple[subprocess.Popen[bytes], str]:
    """Starts elf (default: build() the device image) under QEMU and returns the process
    and its serial port, once the firmware answers there. Stop it with stop(process)."""
    elf = Path(elf) if elf is not None else build()
    problem = qemu_problem()
    if problem:
        raise QemuError(problem)
    try:
        process = subprocess.Popen(serve_command(elf, icount), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, preexec_fn=_preexec())
    except OSError as error:
        raise QemuError(f"cannot start {sys.executable}: {error.strerror}") from error
    from pipeline.emulation.emulate import EmulationError, read_port_line  # emulate imports this module
    try:
        try:
            port = read_port_line(process, timeout + 5.0, "the QEMU emulator")
        except EmulationError as error:
            raise QemuError(str(error)) from None
    except BaseException:
        _stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
        raise
    return process, port


def stop(process: subprocess.Popen[bytes], check: bool = True) -> int:
    """Stops what start() started; with check, a nonzero exit (QEMU died) raises QemuError."""
    died_early = process.poll() is not None
    code = _stop_process(process)
    if process.stdout is not None:
        process.stdout.close()
    if check and code != 0:
        how = "exited unexpectedly" if died_early else "exited"
        raise QemuError(f"the QEMU emulator {how} with status {code} (see its stderr)")
    return code


@contextlib.contextmanager
def running(elf: Path | None = None, *, icount: bool = False, timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """start() as a context manager: yields the serial port, stops QEMU afterwards."""
    process, port = start(elf, icount=icount, timeout=timeout)
    try:
        yield port
    except BaseException:
        stop(process, check=False)
        raise
    stop(process, check=True)


def capture(elf: Path, until: str | re.Pattern[str], *, icount: bool = False, timeout: float = 30.0) -> str:
    """Runs elf with UART0 on QEMU's stdout until a line matching `until` appears; returns
    that line (for images that report and halt, like tinyml_qemu_measure)."""
    problem = qemu_problem()
    if problem:
        raise QemuError(problem)
    pattern = re.compile(until.encode() if isinstance(until, str) else until.pattern.encode())
    line = re.compile(b"^.*?" + pattern.pattern + b".*?(?=\r?\n)", re.M)
    process = subprocess.Popen(command(elf, icount, serial="stdio"), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_preexec())
    try:
        assert process.stdout is not None
        match, _ = _read_until(process.stdout, line, timeout, f"{elf.name} printed no line matching {pattern.pattern!r}",
                               process)
        return match.group(0).decode("ascii", "replace").strip()
    finally:
        _stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


# ---- plug-in for pipeline/emulate.py ---------------------------------------------------------


def _as_emulation_error(error: QemuError) -> Exception:
    """pipeline.emulate's own error type, which its callers catch (imported late: emulate
    may import this module)."""
    try:
        from pipeline.emulation.emulate import EmulationError
    except ImportError:
        return error
    return EmulationError(str(error))


class QemuTarget:
    """pipeline.emulate's Target shape: build(options) returns a command whose first stdout
    line is the serial port; read_port reads it. options: an emulate.BuildOptions (or any
    object with build_dir, tflm_root, verbose, program, sanitize)."""

    name = "qemu"

    def build(self, options: object) -> list[str]:
        try:
            return self._build(options)
        except QemuError as error:
            raise _as_emulation_error(error) from error

    def _build(self, options: object) -> list[str]:
        if getattr(options, "sanitize", False):
            raise QemuError("sanitizers are not available for the QEMU target (use native --sanitize)")
        program = getattr(options, "program", "tinyml_device")
        tflm_root = getattr(options, "tflm_root", None)
        image = PROGRAMS.get(program, program)
        if tflm_root and image == "tinyml_qemu":
            image = "tinyml_qemu_tflm"
        build_dir = getattr(options, "build_dir", None)
        model_dir = getattr(options, "model_dir", None)
        if build_dir is None:
            from pipeline.emulation.emulate import model_suffix  # emulate imports this module
            build_dir = BUILD_DIR.parent / f"qemu{'-tflm' if tflm_root else ''}{model_suffix(model_dir)}"
        elf = build(build_dir, image=image, tflm_root=tflm_root, model_dir=model_dir,
                    verbose=getattr(options, "verbose", False))
        problem = qemu_problem()
        if problem:
            raise QemuError(problem)
        return serve_command(elf)

    def read_port(self, process: subprocess.Popen[bytes], timeout: float) -> str:
        from pipeline.emulation.emulate import read_port_line  # emulate imports this module
        return read_port_line(process, timeout, "the QEMU emulator")


# ---- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.emulation.qemu",
        description="Build the firmware for an emulated Cortex-M4 (qemu-system-arm -M mps2-an386) and run it "
                    "behind a pseudo-terminal.")
    sub = parser.add_subparsers(dest="action", required=True)
    p_build = sub.add_parser("build", help="build an image (incrementally) and print its ELF path")
    p_run = sub.add_parser("run", help="run an image: print the serial port path first, serve until Ctrl-C")
    p_cmd = sub.add_parser("command", help="print the qemu-system-arm command line for an image")
    for p in (p_build, p_run, p_cmd):
        p.add_argument("--build-dir", type=Path, metavar="DIR", help="CMake build directory (default build/qemu)")
        p.add_argument("--model-dir", type=Path, metavar="DIR", help="emitted model sources (default firmware/model)")
        p.add_argument("--image", choices=IMAGES, default="tinyml_qemu", help="which image (default tinyml_qemu)")
        p.add_argument("--verbose", action="store_true", help="show the build's output")
    for p in (p_run, p_cmd):
        p.add_argument("elf", nargs="?", type=Path, help="a built image (default: build --image)")
        p.add_argument("--icount", action="store_true",
                       help="-icount shift=0: virtual time advances 1 ns per executed instruction")
    args = parser.parse_args(argv)
    try:
        elf = getattr(args, "elf", None)
        if elf is None:
            elf = build(args.build_dir, image=args.image, model_dir=args.model_dir, verbose=args.verbose)
        if args.action == "build":
            print(elf)
            return 0
        if args.action == "command":
            print(" ".join(command(elf, args.icount)))
            return 0
        return run(elf, icount=args.icount)
    except QemuError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
