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

The serial port: QEMU's UART0 is on its stdin/stdout (-serial stdio) and
pipeline.emulation.relay serves it on a pseudo-terminal of its own (its docstring says why
not QEMU's `-serial pty`); start() runs that relay as a child, which prints the port once
the firmware answers. command(elf) still gives the plain `-serial pty` command line, for
use by hand.

QemuTarget is the emulation layer's second target beside pipeline.emulation.native: its
command prints the port as the first stdout line, like the native emulator.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, Iterator, Sequence

from pipeline.deadline import Deadline
from pipeline.emulation import cmake_build, relay, tflm_library
from pipeline.emulation.process import EmulationError, launch, read_until, spawn, stop as stop_process, tail
from pipeline.emulation.target import BuildOptions, model_suffix
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
ARM_GXX = tflm_library.COMPILERS["qemu"][0]

# Images firmware/platform/qemu/CMakeLists.txt builds.
IMAGES = ("tinyml_qemu", "tinyml_qemu_null", "tinyml_qemu_crash", "tinyml_qemu_fault",
          "tinyml_qemu_measure", "tinyml_qemu_tflm", "tinyml_qemu_tflm_measure")
# The native emulator's program names (pipeline.emulation.target) and their QEMU images.
PROGRAMS = {"tinyml_device": "tinyml_qemu", "tinyml_device_fault": "tinyml_qemu_fault"}

STARTUP_TIMEOUT = relay.STARTUP_TIMEOUT


class QemuError(EmulationError):
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
    if not (model_dir / "model_aot.h").is_file() or not (model_dir / "model_info.h").is_file():
        raise QemuError(f"{model_dir}: no emitted model (model_aot.h, model_info.h): run python -m pipeline.build")
    tflm = archive = ""
    if tflm_root is not None:
        tflm_path = Path(tflm_root).resolve()
        if not tflm_path.is_dir():
            raise QemuError(f"TFLM root {tflm_path} is not a directory")
        tflm = str(tflm_path)
        try:
            archive = str(tflm_library.library("qemu", tflm_path, verbose))
        except tflm_library.TflmTreeError as error:
            raise QemuError(str(error)) from None
    if image.startswith("tinyml_qemu_tflm") and not tflm:
        raise QemuError(f"{image} needs a TFLM source tree (tflm_root or TFLM_ROOT)")
    cmake = shutil.which("cmake")
    assert cmake is not None  # toolchain_problem checked
    settings = {"source": str(SOURCE_DIR), "model_dir": str(model_dir), "tflm_root": tflm, "tflm_library": archive,
                "gcc": shutil.which(ARM_GCC)}
    try:
        cmake_build.build(cmake, SOURCE_DIR, build_dir, settings,
                          [f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_FILE}", f"-DTINYML_MODEL_DIR={model_dir}", f"-DTFLM_ROOT={tflm}",
                           f"-DTFLM_LIBRARY={archive}"],
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


def serve_command(elf: Path, icount: bool = False, timeout: float = STARTUP_TIMEOUT) -> list[str]:
    """A command that runs elf behind a pty, prints the port as its first stdout line (like
    the native emulator) once the firmware answers, then serves until SIGTERM/SIGINT."""
    return [sys.executable, "-m", relay.__name__, "--timeout", f"{timeout:g}", *command(elf, icount, serial="stdio")]


def _runnable(elf: Path) -> Path:
    problem = qemu_problem()
    if problem:
        raise QemuError(problem)
    elf = Path(elf)
    if not elf.is_file():
        raise QemuError(f"{elf}: no such firmware image (build it: python -m pipeline.emulation.qemu build)")
    return elf


def run(elf: Path, icount: bool = False, timeout: float = STARTUP_TIMEOUT, out: IO[str] | None = None) -> int:
    """Runs elf under QEMU behind a new pty of this process (pipeline.emulation.relay.run):
    prints the port on out (default stdout) once the firmware answers, then relays until
    SIGTERM/SIGINT or until QEMU exits. Returns an exit status: 0 when stopped by a
    signal and QEMU ended cleanly."""
    elf = _runnable(elf)
    return relay.run(command(elf, icount, serial="stdio"), timeout, out)


def start(elf: Path | None = None, *, icount: bool = False,
          timeout: float = STARTUP_TIMEOUT) -> tuple[subprocess.Popen[bytes], str]:
    """Starts elf (default: build() the device image) under QEMU and returns the process
    and its serial port, once the firmware answers there. Stop it with stop(process)."""
    elf = _runnable(elf if elf is not None else build())
    emulation = launch(serve_command(elf, icount, timeout), "QEMU", timeout + 5.0, QemuError)
    return emulation.process, emulation.port


def stop(process: subprocess.Popen[bytes], check: bool = True) -> int:
    """Stops what start() started; with check, a nonzero exit (QEMU died) raises QemuError."""
    ending = stop_process(process)
    if check:
        ending.check("the QEMU emulator", QemuError)
    return ending.code


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
    elf = _runnable(elf)
    pattern = until if isinstance(until, str) else until.pattern
    line = re.compile(b"^.*?" + pattern.encode() + b".*?(?=\r?\n)", re.M)
    process = spawn(command(elf, icount, serial="stdio"), error=QemuError, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = read_until(process, line, Deadline(timeout))
    finally:
        stop_process(process)
    if out.match is None:
        if out.ended:
            raise QemuError(f"QEMU exited with status {process.returncode} before {elf.name} printed a line "
                            f"matching {pattern!r}; it said: {tail(out.data)}")
        raise QemuError(f"{elf.name} printed no line matching {pattern!r} within {timeout:g} s; "
                        f"QEMU said: {tail(out.data)}")
    return out.match.group(0).decode("ascii", "replace").strip()


# ---- the emulation layer's second target ------------------------------------------------------


class QemuTarget:
    """The Cortex-M4 image behind the relay: build(options) returns a command whose first
    stdout line is the serial port, as the native target's does."""

    name = "qemu"

    def build(self, options: BuildOptions) -> list[str]:
        if options.sanitize:
            raise QemuError("sanitizers are not available for the QEMU target (use native --sanitize)")
        image = PROGRAMS.get(options.program, options.program)
        if options.tflm_root and image == "tinyml_qemu":
            image = "tinyml_qemu_tflm"
        build_dir = options.build_dir or BUILD_ROOT / f"qemu{'-tflm' if options.tflm_root else ''}{model_suffix(options.model_dir)}"
        elf = build(build_dir, image=image, tflm_root=options.tflm_root, model_dir=options.model_dir,
                    verbose=options.verbose)
        return serve_command(_runnable(elf))


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
    except EmulationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
