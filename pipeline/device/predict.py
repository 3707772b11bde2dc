"""Ask the device for predictions from the command line: `python -m pipeline.predict 10`.

The device's model id is checked against the local build first, so an answer never
silently comes from an old firmware.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from typing import Iterable, Iterator, Sequence, TextIO

from pipeline import cli
from pipeline.device import connect
from pipeline.device import deployed
from pipeline.device.serial_client import Device, ProtocolError
from pipeline.errors import BadInput

_LEADING_MINUS_NUMBER = re.compile(r"^-[\d.]")


class QueryError(BadInput, ValueError):
    """A query that the model cannot take as typed."""


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "predict",
        description="Send inputs to the device and print one prediction per line: the device's "
                    "answer as it prints it, followed by ' clipped' when an input lies outside the "
                    "calibrated range (the answer is then not trustworthy).",
        epilog="Each X is one query. For a model with several inputs, give one query's values "
               "separated by commas, e.g. 1.5,-2 (negative numbers need no '--'). With no X, "
               "predict reads request lines from standard input (a prompt with line editing at a "
               "terminal) and prints each answer as the device sends it: values, q codes, id, help. "
               f"{cli.EXIT_STATUSES}")
    connect.add_device_arguments(parser)
    parser.add_argument("--codes", action="store_true",
                        help="X are raw int8 input codes (-128..127); print raw int8 output codes "
                             "(protocol command q)")
    parser.add_argument("queries", nargs="*", metavar="X",
                        help="one query: a number, or x1,x2,... for a model with several inputs "
                             "(none: read request lines interactively)")
    return parser


def _protect_negative(argv: Sequence[str]) -> list[str]:
    """argparse takes '-1e3' or '-1,2' for options; a leading space keeps them positional."""
    return [" " + a if _LEADING_MINUS_NUMBER.match(a) else a for a in argv]


def parse_query(text: str, codes: bool) -> list[float] | list[int]:
    """One X argument -> its values: finite numbers, or int8 codes with --codes."""
    parts = [p.strip() for p in text.split(",")]
    shown = text.strip()
    if codes:
        try:
            ints = [int(p) for p in parts]
        except ValueError:
            raise QueryError(f"{shown!r}: codes are integers -128..127") from None
        if any(not -128 <= c <= 127 for c in ints):
            raise QueryError(f"{shown!r}: codes are integers -128..127")
        return ints
    try:
        floats = [float(p) for p in parts]
    except ValueError:
        raise QueryError(f"{shown!r} is not a number") from None
    if not all(math.isfinite(v) for v in floats):
        raise QueryError(f"{shown!r}: inputs must be finite numbers")
    return floats


def check_count(query: Sequence[float], text: str, inputs: int) -> None:
    """The device would answer ERR 4; saying how to write a query is more useful."""
    if len(query) != inputs:
        form = ("x" if inputs == 1 else ",".join(f"x{i + 1}" for i in range(inputs)) if inputs <= 4
                else f"x1,x2,...,x{inputs}")
        raise QueryError(f"{text.strip()!r}: the model takes {inputs} input(s) per query, as {form}")


def interact(device: Device, lines: Iterable[str], out: TextIO) -> None:
    """A terminal to the device with the host's line editing: each line is sent as typed,
    and its answer, an ERR line included, is printed as the device sent it."""
    for line in lines:
        request = line.strip()
        if not request:
            continue
        if not request.isascii() or not request.isprintable():
            print("error: the protocol takes printable ASCII only", file=out)
            continue
        try:
            answer = device.request(request)
        except ProtocolError as error:
            answer = error.line or str(error)
        print(answer, file=out, flush=True)


def _typed_lines() -> Iterator[str]:
    """Lines from a person at a terminal (readline editing and history), or from a pipe."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - input() gains line editing and history
    print("type a request (10, q -128, id, help); Ctrl-D ends", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except EOFError:
            print(file=sys.stderr)
            return


@cli.command
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(_protect_negative(argv))
    queries = [parse_query(q, args.codes) for q in args.queries]  # typos fail before connecting
    local = None if args.allow_stale else deployed.load(args.model_dir)
    local_id = None if local is None else local.id
    timeout = connect.answer_timeout(args, None if local is None else local.tflite)
    with connect.device_port(args) as port, Device(port, timeout=timeout) as device:
        identity = device.identify()
        if local_id is not None:
            connect.check_fresh(identity.model, local_id, args.allow_stale)
        if not queries:
            interact(device, _typed_lines(), sys.stdout)
            return 0
        for query, text in zip(queries, args.queries):
            check_count(query, text, identity.inputs)
        for query in queries:
            if args.codes:
                print(" ".join(str(c) for c in device.predict_codes(query)))
            else:
                print(device.predict(query).text)
            sys.stdout.flush()
    return 0

