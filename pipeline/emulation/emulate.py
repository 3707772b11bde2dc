"""Runs the firmware emulated on this host, behind a serial port (a pseudo-terminal).

The same client, tests and tools that talk to the board then talk to the emulation: only
the port differs. `python -m pipeline.emulate native` builds the firmware's host build
with CMake (configured once, rebuilt incrementally), starts it, prints the serial port's
path as its first stdout line and serves until Ctrl-C or SIGTERM.

From Python::

    with emulated_device("native") as port:
        serial.Serial(port, timeout=2).write(b"id\\n")

Targets: "native" (the core + AOT engine, or TFLM with tflm_root, compiled for this
host). A "qemu" target (Cortex-M4 build on qemu-system-arm) plugs in as another Target.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from pipeline.emulation import cmake_build
from pipeline.paths import BUILD_ROOT, FIRMWARE_DIR
from pipeline.emulation.qemu import QemuTarget

STARTUP_TIMEOUT = 10.0  # seconds from process start to its port line
STOP_TIMEOUT = 5.0  # seconds a stopped emulator gets before it is killed


class EmulationError(Exception):
    """Building or running an emulation failed; str() is one line for the user."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build an emulation. build_dir None picks one per option set under build/,
    so switching options never forces a full rebuild of another configuration."""

    sanitize: bool = False
    tflm_root: Path | None = None
    build_dir: Path | None = None
    model_dir: Path | None = None  # the emitted model sources; None: firmware/model
    verbose: bool = False  # stream the build's output to stderr instead of only on failure
    program: str = "tinyml_device"  # or "tinyml_device_fault": an engine that always fails


class Target(Protocol):
    """One way to emulate the device. build() returns the command that runs it;
    read_port() returns the serial port path the running command exposes."""

    name: str

    def build(self, options: BuildOptions) -> list[str]: ...

    def read_port(self, process: subprocess.Popen[bytes], timeout: float) -> str: ...


@dataclass
class Emulation:
    """A running emulated device: the process and the serial port it serves."""

    process: subprocess.Popen[bytes]
    port: str
    target: str
    _stopped: bool = field(default=False, repr=False)

    def stop(self, check: bool = True) -> int:
        """Ends the emulator (SIGTERM, then SIGKILL after STOP_TIMEOUT) and returns its exit
        status. With check, a crash or a sanitizer report (nonzero exit) raises, so tests
        notice firmware bugs that only show when the process ends."""
        proc = self.process
        died_early = proc.poll() is not None
        if not died_early:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                if check and not self._stopped:
                    self._stopped = True
                    raise EmulationError(f"{self.target} emulator ignored SIGTERM and was killed")
        if proc.stdout is not None:
            proc.stdout.close()
        code = proc.returncode
        if check and not self._stopped and code != 0:
            self._stopped = True
            how = "exited unexpectedly" if died_early else "exited"
            raise EmulationError(f"{self.target} emulator {how} with status {code} "
                                 "(a crash or sanitizer report: see its stderr)")
        self._stopped = True
        return code


def _find_c_compiler() -> str | None:
    """The compiler CMake would pick up: $CC, else cc, gcc or clang on PATH."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env.split()[0])
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


class NativeTarget:
    """The firmware compiled for this host: core + engine + host platform (a pty)."""

    name = "native"
    programs = ("tinyml_device", "tinyml_device_fault")

    def build_dir(self, options: BuildOptions) -> Path:
        if options.build_dir is not None:
            return Path(options.build_dir).resolve()
        suffix = ("-tflm" if options.tflm_root else "") + ("-sanitize" if options.sanitize else "")
        return BUILD_ROOT / f"native{suffix}{model_suffix(options.model_dir)}"

    def build(self, options: BuildOptions) -> list[str]:
        if options.program not in self.programs:
            raise EmulationError(f"unknown native program {options.program!r} "
                                 f"(choose from {', '.join(self.programs)})")
        cmake = shutil.which("cmake")
        if cmake is None or shutil.which("make") is None:
            raise EmulationError("cmake and make not found on PATH: install CMake 3.16 or newer and make "
                                 "(e.g. apt-get install cmake make)")
        build_dir = self.build_dir(options)
        tflm_root = Path(options.tflm_root).resolve() if options.tflm_root else None
        if tflm_root is not None and not tflm_root.is_dir():
            raise EmulationError(f"--tflm-root {tflm_root} is not a directory")
        if not (build_dir / "CMakeCache.txt").is_file() and _find_c_compiler() is None:
            raise EmulationError("no C compiler found ($CC, cc, gcc or clang): install one "
                                 "(e.g. apt-get install gcc)")
        model_dir = model_folder(options.model_dir)
        settings = {"source": str(FIRMWARE_DIR), "sanitize": options.sanitize,
                    "tflm_root": str(tflm_root) if tflm_root else "", "model_dir": str(model_dir)}
        try:
            cmake_build.build(cmake, FIRMWARE_DIR, build_dir, settings,
                              [f"-DSANITIZE={'ON' if options.sanitize else 'OFF'}", f"-DTFLM_ROOT={settings['tflm_root']}",
                               f"-DTINYML_MODEL_DIR={model_dir}"],
                              options.program, "the native emulator", options.verbose)
        except cmake_build.BuildError as error:
            raise EmulationError(str(error)) from None
        exe = build_dir / options.program
        if not exe.is_file():
            raise EmulationError(f"the build finished but {exe} is missing")
        return [str(exe)]

    def read_port(self, process: subprocess.Popen[bytes], timeout: float) -> str:
        return read_port_line(process, timeout, "the native emulator")


def model_folder(model_dir: Path | None) -> Path:
    """The emitted model sources an emulation is built from; refuses a folder without them."""
    folder = Path(model_dir).resolve() if model_dir else FIRMWARE_DIR / "model"
    missing = [name for name in ("model_info.h", "model_aot.c", "model_data.cpp") if not (folder / name).is_file()]
    if missing:
        raise EmulationError(f"{folder}: no emitted model ({', '.join(missing)} missing): run python -m pipeline.build"
                             + (f" --out {model_dir}" if model_dir else ""))
    return folder


def model_suffix(model_dir: Path | None) -> str:
    """Each model folder gets build folders of its own, so switching models never rebuilds another's."""
    folder = Path(model_dir).resolve() if model_dir else FIRMWARE_DIR / "model"
    if folder == FIRMWARE_DIR / "model":
        return ""
    return "-" + hashlib.sha256(str(folder).encode()).hexdigest()[:10]


def read_port_line(process: subprocess.Popen[bytes], timeout: float, who: str) -> str:
    """Every emulator prints its serial port's path as its first stdout line."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise EmulationError(f"{who} printed no port within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 256)
        if not chunk:
            code = process.wait()
            raise EmulationError(f"{who} exited with status {code} before printing its port (see its stderr)")
        data += chunk
    port = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not port.startswith("/"):
        raise EmulationError(f"{who} printed {port!r}, not a port path")
    return port


TARGETS: dict[str, type] = {"native": NativeTarget, "qemu": QemuTarget}


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """What an emulation runs: which model's sources, with which engine."""
    parser.add_argument("--model-dir", type=Path, default=FIRMWARE_DIR / "model", metavar="DIR",
                        help="the emitted model sources to build into the firmware (default firmware/model; "
                             "python -m pipeline.build --out DIR writes them)")
    add_tflm_argument(parser)


def add_tflm_argument(parser: argparse.ArgumentParser) -> None:
    """--tflm-root, defaulting to $TFLM_ROOT, so the environment variable is never silently ignored."""
    default_tflm = os.environ.get("TFLM_ROOT") or None
    parser.add_argument("--tflm-root", type=Path, default=default_tflm, metavar="DIR",
                        help="TFLM library tree: the emulated firmware runs the TFLM engine instead of the AOT one (default: $TFLM_ROOT"
                             + (f", now {default_tflm}" if default_tflm else ", unset: the AOT engine") + ")")


def _target(name: str) -> Target:
    try:
        return TARGETS[name]()
    except KeyError:
        raise EmulationError(f"unknown emulation target {name!r} "
                             f"(choose from {', '.join(sorted(TARGETS))})") from None


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when the thread that started it
    dies, so a killed test run leaves no emulator serving an orphaned pty. Prepared in
    the parent (nothing is imported or loaded after fork); None where unsupported."""
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


def build(target: str = "native", *, build_dir: Path | None = None, sanitize: bool = False,
          tflm_root: Path | None = None, verbose: bool = False,
          program: str = "tinyml_device", model_dir: Path | None = None) -> list[str]:
    """Builds the emulation (incrementally) and returns the command that runs it."""
    options = BuildOptions(sanitize=sanitize, tflm_root=tflm_root, build_dir=build_dir,
                           verbose=verbose, program=program, model_dir=model_dir)
    return _target(target).build(options)


def start(target: str = "native", *, build_dir: Path | None = None, sanitize: bool = False,
          tflm_root: Path | None = None, verbose: bool = False,
          program: str = "tinyml_device", timeout: float = STARTUP_TIMEOUT,
          model_dir: Path | None = None) -> Emulation:
    """Builds and starts an emulated device; the caller must stop() it (or use
    emulated_device, which does). On Linux the emulator ends when the starting thread
    does, so start it from a thread that outlives its use (normally the main thread)."""
    impl = _target(target)
    cmd = impl.build(BuildOptions(sanitize=sanitize, tflm_root=tflm_root, build_dir=build_dir,
                                  verbose=verbose, program=program, model_dir=model_dir))
    try:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   preexec_fn=_parent_death_signal())
    except OSError as error:
        raise EmulationError(f"cannot start {cmd[0]}: {error.strerror}") from error
    try:
        port = impl.read_port(process, timeout)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        raise
    return Emulation(process=process, port=port, target=target)


@contextlib.contextmanager
def emulated_device(target: str = "native", *, build_dir: Path | None = None,
                    sanitize: bool = False, tflm_root: Path | None = None,
                    verbose: bool = False, program: str = "tinyml_device",
                    timeout: float = STARTUP_TIMEOUT, model_dir: Path | None = None) -> Iterator[str]:
    """Builds and starts an emulated device, yields its serial port path and stops it
    afterwards. Raises EmulationError at exit if the emulator crashed or reported a
    sanitizer error (unless the body already raised)."""
    emulation = start(target, build_dir=build_dir, sanitize=sanitize, tflm_root=tflm_root,
                      verbose=verbose, program=program, timeout=timeout, model_dir=model_dir)
    try:
        yield emulation.port
    except BaseException:
        emulation.stop(check=False)
        raise
    emulation.stop(check=True)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM, to leave the serve loop like Ctrl-C does."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.emulate",
        description="Build the firmware for emulation, start it behind a pseudo-terminal and "
                    "print that serial port's path as the first line of stdout; then serve "
                    "until Ctrl-C or SIGTERM. Any serial client (pyserial, screen, picocom, "
                    "python -m pipeline.predict --port PATH) can talk protocol v1 to it.")
    parser.add_argument("target", choices=sorted(TARGETS),
                        help="native: the firmware core compiled for this host; qemu: compiled for the "
                             "Nano's Cortex-M4 and run on qemu-system-arm (mps2-an386)")
    parser.add_argument("--build-dir", type=Path, metavar="DIR",
                        help="CMake build directory (default build/native or build/qemu, with -tflm "
                             "and -sanitize suffixes for those options)")
    parser.add_argument("--sanitize", action="store_true",
                        help="build with AddressSanitizer and UndefinedBehaviorSanitizer")
    add_engine_arguments(parser)
    parser.add_argument("--program", choices=NativeTarget.programs, default="tinyml_device",
                        help="program to run: the device (default), or one whose engine always "
                             "fails, for testing error reporting")
    parser.add_argument("--verbose", action="store_true",
                        help="show the build's output (on stderr) even when it succeeds")
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: object) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    emulation: Emulation | None = None
    try:
        emulation = start(args.target, build_dir=args.build_dir, sanitize=args.sanitize,
                          tflm_root=args.tflm_root, verbose=args.verbose, program=args.program,
                          model_dir=args.model_dir)
        print(emulation.port, flush=True)
        emulation.process.wait()
        running, emulation = emulation, None
        code = running.stop(check=False)
        if code != 0:
            print(f"error: the {args.target} emulator exited with status {code}", file=sys.stderr)
            return 1
        return 0
    except (KeyboardInterrupt, _Stop):
        if emulation is None:  # interrupted while building
            return 130
        running, emulation = emulation, None
        try:
            running.stop(check=True)
        except EmulationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    except EmulationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if emulation is not None:
            emulation.stop(check=False)
        signal.signal(signal.SIGTERM, previous)
