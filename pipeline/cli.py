"""One command-line policy for every command: how errors are printed and which exit status
they give (see pipeline.errors), `--traceback` for bug reports, and the `tinyml` console
script, which runs the same commands as `python -m pipeline.<command>`."""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Sequence

import pipeline
from pipeline.errors import BAD_INPUT, FAILED, INTERRUPTED, PipelineError

COMMANDS = {
    "build": ("pipeline.build", "train, quantize, check and emit the firmware's model sources"),
    "predict": ("pipeline.predict", "ask the device (or an emulation) for the model's answers"),
    "verify": ("pipeline.verify", "prove the device computes what TFLM computes, bit for bit"),
    "emulate": ("pipeline.emulate", "run the firmware on this host behind a pseudo-terminal"),
    "footprint": ("pipeline.footprint.measurement", "measure flash, RAM and instructions on the Cortex-M4"),
}
TRACEBACK = "--traceback"
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell tool's status is when its reader goes away
EXIT_STATUSES = ("Exit status: 0 done, 1 a check failed (or the device or a tool did), 2 bad data or "
                 "arguments, 130 interrupted, 141 the reader of its output quit; an error is one line on stderr (--traceback shows where).")


def prog(command: str) -> str:
    """The name a command's --help and errors show: the form the user typed."""
    if os.path.basename(sys.argv[0] or "") == "tinyml":
        return f"tinyml {command}"
    return f"python -m pipeline.{command}"


class OneLineErrors(argparse.ArgumentParser):
    """argparse's usage errors as one `error:` line with exit status 2, like every other refusal."""

    def error(self, message: str):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(BAD_INPUT)


def parser(command: str, **kwargs) -> argparse.ArgumentParser:
    """A command's argument parser: its name as typed, one-line usage errors, --traceback."""
    result = OneLineErrors(prog=prog(command), **kwargs)
    result.add_argument(TRACEBACK, action="store_true",
                        help="on an error, print Python's traceback too (for a bug report)")
    return result


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def command(main: Callable[[list[str]], int]) -> Callable[[Sequence[str] | None], int]:
    """Wraps a command's main(argv): a PipelineError becomes its one line and exit status,
    Ctrl-C (and any error that follows one) `interrupted` and 130, any other exception (a bug)
    one line that points to --traceback, which prints Python's traceback before that line."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            status = main(args)
            return _interrupted() if pipeline.interrupted() else status  # a Ctrl-C that native code swallowed
        except KeyboardInterrupt:
            return _interrupted()
        except BrokenPipeError:  # the reader of stdout quit (`| head`): as the shell's tools do, quietly
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit
            except OSError:
                pass
            return BROKEN_PIPE
        except Exception as error:  # noqa: BLE001 - a command-line tool reports, it does not crash
            if pipeline.interrupted():
                return _interrupted()
            if TRACEBACK in args:
                traceback.print_exc()
            if isinstance(error, PipelineError):
                print(f"error: {one_line(error)}", file=sys.stderr)
                return error.exit_code
            hint = "" if TRACEBACK in args else f" (a bug: run again with {TRACEBACK} and report what it prints)"
            print(f"error: {type(error).__name__}: {one_line(error)}{hint}", file=sys.stderr)
            return FAILED

    return run


def _interrupted() -> int:
    if pipeline.is_command() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot break the exit
    print("interrupted", file=sys.stderr)
    return INTERRUPTED


def tinyml(argv: Sequence[str] | None = None) -> int:
    """The console script: `tinyml <command> [arguments]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:{width}}  {text}" for name, (_, text) in COMMANDS.items()]
        print("usage: tinyml {" + ",".join(COMMANDS) + "} [arguments]  (tinyml COMMAND --help for each)\n\n"
              "commands:\n" + "\n".join(lines), file=sys.stdout if args[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else BAD_INPUT
    pipeline.install_interrupt_policy()
    status = importlib.import_module(COMMANDS[args[0]][0]).main(args[1:])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a Ctrl-C during shutdown cannot change the status
    return status
