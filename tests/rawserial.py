"""A raw pyserial line client for the protocol tests: bytes in, exact CRLF lines out.

Deliberately not pipeline.device.serial_client: these tests must see every byte the device
sends, including what a friendly client would hide.
"""
from __future__ import annotations

import re
import time

import serial

from pipeline.deadline import Deadline

TIMEOUT = 10.0
HELP = "help: X1 [X2 ...] | q C1 [C2 ...] | id | bench N | help"
ID_RE = re.compile(
    r"id proto=1 model=(?P<model>[0-9a-f]{12}) engine=(?P<engine>aot|tflm) "
    r"inputs=(?P<inputs>\d+) outputs=(?P<outputs>\d+) in_scale=(?P<in_scale>\S+) "
    r"in_zp=(?P<in_zp>-?\d+) out_scale=(?P<out_scale>\S+) out_zp=(?P<out_zp>-?\d+) "
    r"range=(?P<lo>[^:\s]+):(?P<hi>\S+) arena=(?P<arena>\d+)")


class Device:
    """A pyserial connection with one-line request/response helpers."""

    def __init__(self, port: str) -> None:
        self.serial = serial.Serial(port, timeout=TIMEOUT)

    def close(self) -> None:
        self.serial.close()

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def read_line(self) -> str:
        raw = self.serial.readline()
        assert raw.endswith(b"\r\n"), f"no complete CRLF line within {TIMEOUT} s: {raw!r}"
        text = raw[:-2].decode("ascii")
        assert "\r" not in text and "\n" not in text
        return text

    def read_lines(self, count: int, timeout: float) -> list[str]:
        """count CRLF lines, read in bulk (pyserial's readline reads byte by byte)."""
        deadline = Deadline(timeout)
        data = b""
        crlf = b"\r\n"
        while data.count(crlf) < count:
            assert not deadline.expired(), f"only {data.count(crlf)} of {count} lines within {timeout} s"
            self.serial.timeout = min(deadline.remaining(), 0.5)
            data += self.serial.read(max(1, self.serial.in_waiting))
        self.serial.timeout = TIMEOUT
        lines = data.split(b"\r\n")
        assert lines[count] == b"", "more than asked for arrived"
        return [line.decode("ascii") for line in lines[:count]]

    def ask(self, line: str | bytes, ending: bytes = b"\n") -> str:
        self.write((line.encode() if isinstance(line, str) else line) + ending)
        return self.read_line()

    def silent(self, seconds: float = 0.3) -> bool:
        """True when nothing arrives for a while (nothing is sent unasked)."""
        time.sleep(seconds)
        return self.serial.in_waiting == 0
