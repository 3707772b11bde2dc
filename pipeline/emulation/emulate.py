"""Runs the firmware emulated on this host, behind a serial port (a pseudo-terminal).

The same client, tests and tools that talk to the board then talk to the emulation: only
the port differs. `python -m pipeline.emulate native` builds the firmware's host build
with CMake (configured once, rebuilt incrementally), starts it, prints the serial port's
path as its first stdout line and serves until Ctrl-C or SIGTERM.

From Python::

    with emulated_device("native") as port:
        serial.Serial(port, timeout=2).write(b"id\\n")

Targets (pipeline.emulation.target.Target): "native" (pipeline.emulation.native: the core
and the AOT engine, or TFLM with tflm_root, compiled for this host) and "qemu"
(pipeline.emulation.qemu: the Cortex-M4 build on qemu-system-arm). Each only builds the
command; starting, reading the port and stopping are pipeline.emulation.process's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator

from pipeline.emulation.native import NativeTarget
from pipeline.emulation.process import Emulation, EmulationError, Stop, launch, stopped_by
from pipeline.emulation.qemu import QemuTarget
from pipeline.emulation.target import DEVICE_PROGRAMS, BuildOptions, Target, model_folder
from pipeline.errors import BadInput
from pipeline.paths import FIRMWARE_DIR
from pipeline import cli

STARTUP_TIMEOUT = 10.0  # seconds from process start to its port line

TARGETS: dict[str, type[Target]] = {"native": NativeTarget, "qemu": QemuTarget}


class NoModelError(BadInput, EmulationError):
    """The model folder holds no emitted model: the argument must change, as predict and verify say."""


def emitted_model(model_dir: Path | None, tflm: bool = False) -> Path:
    """The emitted model folder, or NoModelError (exit 2) before any build starts."""
    try:
        return model_folder(model_dir, tflm)
    except EmulationError as error:
        raise NoModelError(str(error)) from None


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
    emitted_model(model_dir, tflm=tflm_root is not None)
    cmd = build(target, build_dir=build_dir, sanitize=sanitize, tflm_root=tflm_root, verbose=verbose,
                program=program, model_dir=model_dir)
    return launch(cmd, target, timeout)


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


@cli.command
def main(argv: list[str]) -> int:
    parser = cli.parser(
        "emulate",
        description="Build the firmware for emulation, start it behind a pseudo-terminal and "
                    "print that serial port's path as the first line of stdout; then serve "
                    "until Ctrl-C or SIGTERM. Any serial client (pyserial, screen, picocom, "
                    "python -m pipeline.predict --port PATH) can talk protocol v1 to it.",
        epilog=cli.EXIT_STATUSES)
    parser.add_argument("target", choices=sorted(TARGETS),
                        help="native: the firmware core compiled for this host; qemu: compiled for the "
                             "Nano's Cortex-M4 and run on qemu-system-arm (mps2-an386)")
    parser.add_argument("--build-dir", type=Path, metavar="DIR",
                        help="CMake build directory (default build/native or build/qemu, with -tflm "
                             "and -sanitize suffixes for those options)")
    parser.add_argument("--sanitize", action="store_true",
                        help="build with AddressSanitizer and UndefinedBehaviorSanitizer")
    add_engine_arguments(parser)
    parser.add_argument("--program", choices=DEVICE_PROGRAMS, default="tinyml_device",
                        help="program to run: the device (default), or one whose engine always "
                             "fails, for testing error reporting")
    parser.add_argument("--verbose", action="store_true",
                        help="show the build's output (on stderr) even when it succeeds")
    args = parser.parse_args(argv)

    with stopped_by(signal.SIGTERM):
        return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    """Serves until the emulator exits, or until Ctrl-C or SIGTERM (Stop) stops it."""
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
            raise EmulationError(f"the {args.target} emulator exited with status {code}")
        return 0
    except (KeyboardInterrupt, Stop):
        if emulation is None:  # interrupted while building
            raise KeyboardInterrupt from None
        running, emulation = emulation, None
        running.stop(check=True)  # asked to stop: a clean stop is success
        return 0
    finally:
        if emulation is not None:
            emulation.stop(check=False)
