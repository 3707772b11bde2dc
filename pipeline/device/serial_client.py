"""A client for serial protocol v1 (docs/protocol.md): one API for the board and the emulations.

Every read is bounded by a deadline, so a silent, slow or unplugged device ends in an
exception, never a hang. Errors form one hierarchy (DeviceError) so callers can report
them in one line.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Iterator, Sequence

import numpy as np
import serial
from serial.tools import list_ports

try:
    import termios
    _TERMIOS_ERRORS: tuple[type[Exception], ...] = (termios.error,)
except ImportError:  # Windows: pyserial reports everything as SerialException or OSError there
    _TERMIOS_ERRORS = ()

from pipeline.deadline import Deadline
from pipeline.errors import BAD_INPUT, PipelineError
from pipeline.int8.description import CLASSIFY, REGRESS, Interface, decode_label

PROTOCOL_VERSION = 1
DEFAULT_TIMEOUT = 2.0
DEFAULT_WINDOW = 32

# Writes go out in chunks of at most this many bytes, each flushed (tcdrain) before the
# next. 256 is the receive buffer of the board's USB serial: the Arduino mbed core's
# USBSerial keeps received bytes in a RingBufferN<256> (cores/arduino/USB/PluggableUSBSerial.h),
# filled from one 64-byte bulk packet at a time (USBCDC, CDC_MAX_PACKET_SIZE); the firmware's
# loop drains it as it parses, and USB holds the host back (NAK) while it is full. A chunk
# that fits it is taken at once, so each write's timeout measures the device, not the line's
# length: a 714-input query (several KB) is a dozen chunks, not one long write.
WRITE_CHUNK = 256
# predict_codes_many keeps at most this many request bytes in flight besides its window of
# requests (and always one request, however long): wide rows stay a few lines ahead.
WINDOW_BYTES = 16 * 1024
# An answer also waits for its request's bytes to cross the link: at this rate at the slowest (QEMU's
# UART takes one byte per main-loop round, 12-25 kB/s measured; the board's USB serial is faster).
# A 96x96x3 image's value query is 270 kB: 27 s more than the device's own time.
LINK_FLOOR_BYTES_PER_S = 10_000

# Arduino Nano 33 BLE USB ids, from ArduinoCore-mbed's boards.txt (nano33ble.vid/pid.N).
ARDUINO_VID = 0x2341
NANO33BLE_SKETCH_PIDS = (0x805A, 0x015A, 0x025A)  # a running sketch (CDC, CDC+HID variants)
NANO33BLE_BOOTLOADER_PIDS = (0x005A,)  # after a double tap on reset: no sketch runs

PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, *_TERMIOS_ERRORS)
"""What pyserial raises when the port is gone. Its POSIX flush() and reset_input_buffer() call
tcdrain and tcflush directly, whose termios.error is no OSError: a port that vanishes between a
write and its flush raised it past every handler."""

_POLL = 0.05  # pyserial's own read timeout; our deadlines loop over it
_SETTLE = 0.25  # how long opening waits for stale answers to arrive before discarding them


class DeviceError(PipelineError):
    """Anything that went wrong talking to a device; str() is a one-line explanation."""


class PortUnavailable(DeviceError):
    """The port could not be opened (missing, busy, or no permission)."""

    exit_code = BAD_INPUT


class NoDeviceFound(DeviceError):
    """Port discovery found no board, or several and cannot choose: --port says which."""

    exit_code = BAD_INPUT


class DeviceTimeout(DeviceError):
    """A response line did not come back in time."""


class DeviceDisconnected(DeviceError):
    """The port vanished under us (unplugged board, stopped emulator)."""


class ProtocolError(DeviceError):
    """The answer is an ERR line (code set) or not protocol v1 at all (code None)."""

    def __init__(self, reason: str, code: int | None = None, line: str | None = None) -> None:
        super().__init__(f"device error {code}: {reason}" if code is not None else reason)
        self.code = code
        self.reason = reason
        self.line = line


class ErrorCode(IntEnum):
    """The codes of ERR lines (ProtocolError.code), named as firmware/core/errors.h names
    them; tests/test_error_codes.py keeps this, that table and docs/protocol.md equal."""

    EMPTY_LINE = 1
    LINE_TOO_LONG = 2
    BAD_NUMBER = 3
    WRONG_COUNT = 4
    BAD_CODE = 5
    UNKNOWN_COMMAND = 6
    ENGINE = 7
    BAD_ARGUMENT = 8


class NotOurDevice(DeviceError):
    """`id` got no answer, or one that is not protocol v1: wrong port or different firmware."""


@dataclass(frozen=True)
class Identity(Interface):
    """The device's `id` line: the model's interface as the device reports it (the shared
    description's fields, compared with it by Interface.agrees), and which model and engine run."""

    proto: int
    model: str
    engine: str
    arena: int
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, line: str) -> "Identity":
        """Parses `id proto=1 model=... arena=B`; keys it does not know go to `extra`."""
        fields = line.split()
        if not fields or fields[0] != "id":
            raise ValueError(f"not an id line: {line!r}")
        pairs: dict[str, str] = {}
        for item in fields[1:]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"bad id field {item!r}")
            pairs[key] = value
        try:
            lo, sep, hi = pairs.pop("range").partition(":")
            if not sep:
                raise ValueError("range is not LO:HI")
            known = dict(
                proto=int(pairs.pop("proto")), model=pairs.pop("model"), engine=pairs.pop("engine"),
                inputs=int(pairs.pop("inputs")), outputs=int(pairs.pop("outputs")),
                input_scale=float(pairs.pop("in_scale")), input_zero_point=int(pairs.pop("in_zp")),
                output_scale=float(pairs.pop("out_scale")), output_zero_point=int(pairs.pop("out_zp")),
                input_range=(float(lo), float(hi)), arena=int(pairs.pop("arena")),
                input_center=float(pairs.pop("in_center", 0.0)))
            task = pairs.pop("task", REGRESS)
            if task == CLASSIFY and int(pairs.pop("classes")) != known["outputs"]:
                raise ValueError("classes= differs from outputs=")
        except KeyError as missing:
            raise ValueError(f"id line lacks {missing.args[0]}=") from None
        if task not in (REGRESS, CLASSIFY):
            raise ValueError(f"unknown task={task}")
        return cls(**known, task=task, extra=pairs)


@dataclass(frozen=True)
class Prediction:
    """A float answer: the values, whether an input was outside the calibrated range, and the text."""

    values: list[float]
    clipped: bool
    text: str = ""
    label: str | None = None
    """A classifier's top label (decoded), after its class probabilities."""


@dataclass(frozen=True)
class Bench:
    """`bench N`: N inferences timed by the device's own clock."""

    n: int
    us: int

    @property
    def us_per_inference(self) -> float:
        return self.us / self.n


def _format_value(x: float) -> str:
    """The shortest decimal that reads back as x's nearest float32, which is what the device
    reads any decimal as (correctly rounded): the same input, in at most 9 digits instead
    of float64's 17, which matters when a query has hundreds of values. A value beyond
    float32 goes as it is, for the device to refuse (ERR 3)."""
    return _format_values([x])[0]


def _format_values(xs: Sequence[float]) -> list[str]:
    """_format_value of each, converted as one array: a 714-value query costs no more
    client time than float64's repr would."""
    values = np.array([float(x) for x in xs], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{values[bad][0]} is not a finite number (the protocol accepts none)")
    with np.errstate(over="ignore"):
        singles = values.astype(np.float32)
    return [str(single) if np.isfinite(single) else repr(float(x)) for single, x in zip(singles, values)]


def _format_code(c: int) -> str:
    """Codes are checked here, so a typo fails before it costs a round trip."""
    if isinstance(c, bool) or int(c) != c or not -128 <= int(c) <= 127:
        raise ValueError(f"{c!r} is not an int8 code (-128..127)")
    return str(int(c))


def _decode(token: str, line: str) -> str:
    try:
        return decode_label(token)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"unexpected label {token!r} in {line!r}", line=line) from None


def _parse_numbers(tokens: Sequence[str], line: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise ProtocolError(f"unexpected answer {line!r}", line=line) from None


class Device:
    """A protocol-v1 device on a serial port; use as a context manager.

    Opening sends a newline and discards whatever comes back, so answers left over
    from an earlier session cannot be taken for ours. Call identify() first: it also
    skips any stale line that arrives late, and it lets later answers be checked
    against the model's output count.
    """

    def __init__(self, port: str, timeout: float = DEFAULT_TIMEOUT, baudrate: int = 115200) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.port = port
        self.timeout = timeout
        self.identity: Identity | None = None
        self._buffer = bytearray()
        try:
            self._serial = serial.Serial(port, baudrate, timeout=min(_POLL, timeout),
                                         write_timeout=timeout, exclusive=True)
        except PORT_ERRORS as error:  # tcsetattr's termios.error escapes pyserial's open()
            raise PortUnavailable(_open_failure(port, error)) from error
        try:
            self._drain()
        except BaseException:
            self.close()
            raise

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._serial.close()
        except PORT_ERRORS:
            pass  # the port may already be gone; closing must not raise on top of that

    # -- bytes ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _port_lost(self, doing: str) -> Iterator[None]:
        """Every operation on the port runs inside this guard, so a port that vanishes is one
        DeviceDisconnected whichever call noticed (pyserial's errors differ by call: see PORT_ERRORS)."""
        try:
            yield
        except serial.SerialTimeoutException as error:  # only writes time out
            raise DeviceTimeout(f"{self.port}: the device accepted no input for {self.timeout:g} s") from error
        except PORT_ERRORS as error:
            raise DeviceDisconnected(f"{self.port}: the device disconnected (port lost while {doing})") from error

    def _write(self, text: str) -> None:
        """Sends text in chunks of at most WRITE_CHUNK bytes, each flushed before the next."""
        data = text.encode("ascii")
        with self._port_lost("writing"):
            for start in range(0, len(data), WRITE_CHUNK):
                self._serial.write(data[start:start + WRITE_CHUNK])
                if len(data) > WRITE_CHUNK:
                    self._serial.flush()

    def _fill(self) -> bool:
        """Reads what is available, waiting at most one poll interval; False when nothing came."""
        with self._port_lost("reading"):
            chunk = self._serial.read(max(1, self._serial.in_waiting))
        self._buffer.extend(chunk)
        return bool(chunk)

    def _read_line(self, timeout: float | None = None, sent: int = 0) -> str:
        """One response line without its line ending, within timeout (default: the device's), and the
        time `sent` request bytes still take to cross the link at its slowest."""
        wait = (self.timeout if timeout is None else timeout) + sent / LINK_FLOOR_BYTES_PER_S
        deadline = Deadline(wait)
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                return raw.decode("ascii", errors="replace").rstrip("\r")
            if deadline.expired():
                raise DeviceTimeout(f"{self.port}: no answer within {wait:g} s")
            self._fill()

    def _drain(self) -> None:
        """Sends a newline and discards all answers that arrive until the line goes quiet."""
        self._write("\n")
        settle = Deadline(min(_SETTLE, self.timeout))
        seen_line = False
        while not settle.expired():
            got = self._fill()
            seen_line = seen_line or b"\n" in self._buffer
            if seen_line and not got:
                break  # one poll interval of quiet after the first answer
        self._buffer.clear()
        with self._port_lost("opening"):
            self._serial.reset_input_buffer()

    # -- requests ---------------------------------------------------------------------
    def request(self, line: str, timeout: float | None = None) -> str:
        """Sends one request line, returns its response line; ERR lines raise ProtocolError."""
        if "\n" in line or "\r" in line:
            raise ValueError("one request is one line: no CR or LF inside")
        self._write(line + "\n")
        return self._checked(self._read_line(timeout, sent=len(line) + 1))

    @staticmethod
    def _checked(answer: str) -> str:
        """The answer itself, or ProtocolError carrying the code and reason of an ERR line."""
        if not answer.startswith("ERR"):
            return answer
        code, _, reason = answer[3:].strip().partition(" ")
        if not code.isdigit():
            raise ProtocolError(f"malformed error line {answer!r}", line=answer)
        raise ProtocolError(reason.strip() or answer, code=int(code), line=answer)

    def _check_count(self, got: int, answer: str) -> None:
        """Once identified, an answer with the wrong number of outputs is not ours."""
        if self.identity is not None and got != self.identity.outputs:
            raise ProtocolError(f"expected {self.identity.outputs} outputs, got {answer!r}", line=answer)

    def identify(self) -> Identity:
        """Asks `id`; skips stale lines before the answer. NotOurDevice if none comes in time."""
        try:
            self._write("id\n")
            deadline = Deadline(self.timeout)
            while True:
                line = self._read_line(deadline.remaining())
                if line.startswith("id ") or line == "id":
                    break
        except DeviceTimeout as error:
            raise NotOurDevice(f"{self.port}: no answer to `id` within {self.timeout:g} s: "
                               "not a protocol-v1 device (wrong port, or other firmware)") from error
        try:
            identity = Identity.parse(line)
        except ValueError as error:
            raise NotOurDevice(f"{self.port}: `id` answered {line!r}: {error}") from error
        if identity.proto != PROTOCOL_VERSION:
            raise ProtocolError(f"device speaks protocol {identity.proto}, this client speaks "
                                f"{PROTOCOL_VERSION}", line=line)
        self.identity = identity
        return identity

    def predict(self, values: Sequence[float]) -> Prediction:
        """Float inputs in, float outputs out, as a person at a terminal would ask."""
        answer = self.request(" ".join(_format_values(values)))
        tokens = answer.split()
        clipped = bool(tokens) and tokens[-1] == "clipped"
        if clipped:
            tokens = tokens[:-1]
        label = None
        if self.identity is not None and self.identity.task == CLASSIFY and tokens:
            label = _decode(tokens.pop(), answer)
        if not tokens:
            raise ProtocolError(f"unexpected answer {answer!r}", line=answer)
        self._check_count(len(tokens), answer)
        return Prediction(_parse_numbers(tokens, answer), clipped, answer, label)

    def labels(self) -> list[str]:
        """A classifier's labels in output order (`labels`), decoded from the wire's encoding."""
        answer = self.request("labels")
        tokens = answer.split()
        if not tokens or tokens[0] != "labels":
            raise ProtocolError(f"unexpected answer {answer!r} to labels", line=answer)
        return [_decode(t, answer) for t in tokens[1:]]

    def predict_codes(self, codes: Sequence[int]) -> list[int]:
        """Raw int8 input codes in, raw int8 output codes out (`q`): exact, for programs."""
        return self._parse_q(self.request(self._q_line(codes)))

    def predict_codes_many(self, rows: Iterable[Sequence[int]], window: int = DEFAULT_WINDOW) -> list[list[int]]:
        """`q` for many rows, keeping up to `window` requests in flight; answers in row order.

        Pipelining hides the round-trip latency (USB frames, pty wake-ups). The window
        stays small so neither side's buffer can fill while the other waits: at most
        `window` requests and WINDOW_BYTES of them (but always one) are in flight. An ERR
        answer raises ProtocolError after the answers still in flight are read, so the
        device stays in step for the next request.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        pending = enumerate(rows)  # formatted lazily: a long stream costs no memory up front
        exhausted = False
        results: list[list[int]] = []
        in_flight: deque[tuple[int, int]] = deque()  # (row index, request bytes)
        in_flight_bytes = 0
        waiting: tuple[int, str] | None = None  # formatted, not yet sent: over the byte budget
        failure: Exception | None = None  # stops sending; in-flight answers are still read
        while True:
            if failure is None and (waiting is not None or not exhausted) and len(in_flight) <= window // 2 \
                    and in_flight_bytes <= WINDOW_BYTES // 2:
                batch: list[str] = []
                while len(in_flight) < window:
                    if waiting is None:
                        try:
                            index, row = next(pending)
                            waiting = index, self._q_line(row) + "\n"
                        except StopIteration:
                            exhausted = True
                            break
                        except ValueError as error:
                            failure = ValueError(f"row {index}: {error}")
                            break
                    if in_flight and in_flight_bytes + len(waiting[1]) > WINDOW_BYTES:
                        break
                    batch.append(waiting[1])
                    in_flight.append((waiting[0], len(waiting[1])))
                    in_flight_bytes += len(waiting[1])
                    waiting = None
                if batch:
                    self._write("".join(batch))
            if not in_flight:
                break
            index, sent = in_flight.popleft()
            answer = self._read_line(sent=in_flight_bytes)  # the bytes ahead of its answer too
            in_flight_bytes -= sent
            if failure is not None:
                continue
            try:
                results.append(self._parse_q(self._checked(answer)))
            except ProtocolError as error:
                failure = ProtocolError(f"row {index}: {error.reason}", code=error.code, line=error.line)
        if failure is not None:
            raise failure
        return results

    def bench(self, n: int, timeout: float | None = None) -> Bench:
        """Times n inferences on the device; the timeout grows with n (100 us per inference)."""
        answer = self.request(f"bench {int(n)}", self.timeout + n * 1e-4 if timeout is None else timeout)
        fields = dict(item.partition("=")[::2] for item in answer.split()[1:])
        try:
            if not answer.startswith("bench "):
                raise ValueError
            return Bench(int(fields["n"]), int(fields["us"]))
        except (KeyError, ValueError):
            raise ProtocolError(f"unexpected answer to bench: {answer!r}", line=answer) from None

    def help(self) -> str:
        return self.request("help")

    @staticmethod
    def _q_line(codes: Sequence[int]) -> str:
        return "q " + " ".join(_format_code(c) for c in codes)

    def _parse_q(self, answer: str) -> list[int]:
        tokens = answer.split()
        if len(tokens) < 2 or tokens[0] != "q":
            raise ProtocolError(f"unexpected answer to q: {answer!r}", line=answer)
        try:
            codes = [int(t) for t in tokens[1:]]
        except ValueError:
            raise ProtocolError(f"unexpected answer to q: {answer!r}", line=answer) from None
        if any(not -128 <= c <= 127 for c in codes):
            raise ProtocolError(f"output code out of int8 range: {answer!r}", line=answer)
        self._check_count(len(codes), answer)
        return codes


def _open_failure(port: str, error: Exception) -> str:
    """pyserial's open errors, said once and with the usual fix."""
    code = getattr(error, "errno", None)  # pyserial raises SerialException(errno, message)
    if code is None and error.args and isinstance(error.args[0], int):  # termios.error(errno, message)
        code = error.args[0]
        error = OSError(code, os.strerror(code))
    if code == errno.ENOENT:
        return f"{port}: no such serial port"
    if code == errno.EACCES:
        return f"{port}: permission denied (on Linux, add yourself to the dialout group and log in again)"
    if code in (errno.EWOULDBLOCK, errno.EBUSY):
        return f"{port}: busy, another program has the port open (a serial monitor?)"
    return f"cannot open {port}: {error}"


def find_nano33ble() -> str:
    """The serial port of the one Arduino Nano 33 BLE plugged in, found by USB VID:PID."""
    sketch, bootloader = [], []
    for port in list_ports.comports():
        if port.vid != ARDUINO_VID:
            continue
        if port.pid in NANO33BLE_SKETCH_PIDS:
            sketch.append(port.device)
        elif port.pid in NANO33BLE_BOOTLOADER_PIDS:
            bootloader.append(port.device)
    if len(sketch) == 1:
        return sketch[0]
    if len(sketch) > 1:
        raise NoDeviceFound(f"several Arduino Nano 33 BLE boards found ({', '.join(sorted(sketch))}): "
                            "choose one with --port")
    if bootloader:
        raise NoDeviceFound(f"the Nano 33 BLE at {', '.join(sorted(bootloader))} is in its bootloader "
                            "(no sketch runs): upload the firmware or press reset once")
    raise NoDeviceFound("no Arduino Nano 33 BLE found (USB 2341:805a): plug it in, or give --port "
                        "(or --emulate native to use the emulation)")
