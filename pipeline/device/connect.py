"""Command-line plumbing shared by predict and verify: which port, which device, is it current.

One place decides how a port is chosen (--port, --emulate, or USB discovery) and how a
stale firmware is refused, so every tool says the same thing about it.
"""
from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path
from typing import Iterator

from pipeline.paths import MODEL_DIR
from pipeline.emulation.emulate import TARGETS as EMULATION_TARGETS, add_tflm_argument, emulated_device
from pipeline.device.serial_client import DEFAULT_TIMEOUT, DeviceError, find_nano33ble


class StaleFirmware(DeviceError):
    """The device runs a different model than the local build in firmware/model/."""


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="PORT",
                       help="serial port of the device, e.g. /dev/ttyACM0 (default: find the one "
                            "Arduino Nano 33 BLE by its USB VID:PID 2341:805a)")
    where.add_argument("--emulate", choices=sorted(EMULATION_TARGETS),
                       help="start the firmware emulated on this host and talk to it over its "
                            "pseudo-terminal")
    parser.add_argument("--allow-stale", action="store_true",
                        help="talk to the device even if its model id differs from the local build's "
                             "(firmware/model/model.json)")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR, metavar="DIR",
                        help="the local build to compare with: a folder holding model.json and "
                             "model.tflite (default firmware/model); with --emulate, also the model "
                             "the emulated firmware is built from")
    add_tflm_argument(parser)
    parser.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                        help=f"how long to wait for each answer line (default {DEFAULT_TIMEOUT:g} s, and "
                             f"{SECONDS_PER_MAC * 1e6:g} us more per multiply-accumulate of the model: an answer "
                             "waits for its inference)")


SECONDS_PER_MAC = 1e-6
"""An answer's wait grows with the model's work: about 3 times what the slowest engine measured needs
(the AOT engine's portable convolutions, 20 instructions a MAC: 0.3 us on the board's 64 MHz M4, 0.2 us
under QEMU): person_detect's 7.2 million MACs wait 9 s."""


def answer_timeout(args: argparse.Namespace, tflite: bytes | None) -> float:
    """--timeout as given, else the default plus SECONDS_PER_MAC for each MAC of the model."""
    if args.timeout is not None:
        return float(args.timeout)
    if tflite is None:
        return DEFAULT_TIMEOUT
    from pipeline.int8 import ops, tflite_model
    return DEFAULT_TIMEOUT + SECONDS_PER_MAC * ops.macs(tflite_model.read(tflite))


def seconds(text: str) -> float:
    """A finite, positive wait: nan or inf would be accepted by float() and then misreported."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise argparse.ArgumentTypeError(f"{text.strip()!r}: need a number of seconds > 0 and <= 3600")
    return value


@contextlib.contextmanager
def device_port(args: argparse.Namespace) -> Iterator[str]:
    """The port to open: the one given, a freshly started emulation, or the board found by USB."""
    if args.emulate:
        with emulated_device(args.emulate, model_dir=args.model_dir, tflm_root=args.tflm_root) as port:
            yield port
    elif args.port:
        yield args.port
    else:
        yield find_nano33ble()


def check_fresh(device_id: str, local_id: str, allow_stale: bool) -> None:
    """Refuses a device whose model differs from the local build, unless allowed."""
    if device_id != local_id and not allow_stale:
        raise StaleFirmware(
            f"firmware is stale: the device runs model {device_id}, the local build is {local_id}; "
            "rebuild and upload the firmware (pio run -t upload; an emulation rebuilds on start), "
            "or pass --allow-stale")
