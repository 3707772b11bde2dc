"""A port that vanishes is `device disconnected`, whichever port operation notices it.

Real pseudo-terminals, no mocks: closing a pty's master hangs its slave up, after which every
operation the client makes on the slave fails, each in its own way (pyserial's write and read
raise SerialException, in_waiting OSError, flush and reset_input_buffer termios.error, which
is no OSError and escaped the client before). Nothing here waits for a signal to land at a
guessed moment: each test closes the master first, or has the far end close it itself after
reading a chosen number of bytes, and the outcome is asserted every time."""
from __future__ import annotations

import os
import select
import termios
import threading
from typing import Callable

import pytest

from pipeline.device.serial_client import WRITE_CHUNK, Device, DeviceDisconnected

REPEAT = 10


def _open_then_hang_up() -> Device:
    """A Device on a fresh pty whose far end has gone: the master is closed after opening."""
    master, slave = os.openpty()
    try:
        device = Device(os.ttyname(slave), timeout=0.1)  # opening waits this long for stale answers
    finally:
        os.close(slave)  # the client holds its own descriptor of the slave
    os.close(master)
    return device


PORT_OPERATIONS: dict[str, tuple[str, Callable[[Device], object]]] = {
    "write": ("writing", lambda d: d._serial.write(b"id\n")),
    "flush": ("writing", lambda d: d._serial.flush()),
    "reset_input_buffer": ("opening", lambda d: d._serial.reset_input_buffer()),
    "in_waiting": ("reading", lambda d: d._serial.in_waiting),
    "read": ("reading", lambda d: d._serial.read(1)),
}


@pytest.mark.parametrize("operation", sorted(PORT_OPERATIONS))
def test_each_port_operation_on_a_vanished_port_is_device_disconnected(operation: str) -> None:
    """The client's guard around each pyserial call it makes, with the real error of a hung-up pty."""
    doing, call = PORT_OPERATIONS[operation]
    for _ in range(REPEAT):
        device = _open_then_hang_up()
        try:
            with pytest.raises(DeviceDisconnected) as lost, device._port_lost(doing):
                call(device)
            assert str(lost.value) == f"{device.port}: the device disconnected (port lost while {doing})"
        finally:
            device.close()  # closing a vanished port raises nothing


def test_flush_and_reset_on_a_vanished_port_raise_termios_error_underneath() -> None:
    """Why the guard must name termios.error: pyserial's flush and reset_input_buffer raise it bare."""
    device = _open_then_hang_up()
    try:
        for call in (device._serial.flush, device._serial.reset_input_buffer):
            with pytest.raises(termios.error):
                call()
    finally:
        device.close()


REQUESTS: dict[str, Callable[[Device], object]] = {
    "identify": lambda d: d.identify(),
    "a short request": lambda d: d.request("10"),
    "a request of several write chunks": lambda d: d.request("q " + " ".join(["-128"] * (3 * WRITE_CHUNK // 5))),
    "pipelined codes": lambda d: d.predict_codes_many([[k % 256 - 128] for k in range(500)]),
    "reading an answer": lambda d: d._read_line(),
}


@pytest.mark.parametrize("what", sorted(REQUESTS))
def test_every_request_on_a_vanished_port_is_device_disconnected(what: str) -> None:
    for _ in range(REPEAT):
        device = _open_then_hang_up()
        try:
            with pytest.raises(DeviceDisconnected):
                REQUESTS[what](device)
        finally:
            device.close()


def _far_end_leaves_after(master: int, count: int) -> threading.Thread:
    """The device side: reads `count` bytes of what the client sends, then closes its end."""
    def run() -> None:
        got = 0
        try:
            while got < count:
                if select.select([master], [], [], 5)[0]:
                    got += len(os.read(master, min(4096, count - got)))
        finally:
            os.close(master)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_device_that_leaves_mid_write_is_device_disconnected_every_time() -> None:
    """The far end reads part of a long request, then goes: the client is somewhere in its chunked
    write, in a write or in the flush after one, and either way it is told the device disconnected."""
    line = "q " + " ".join(["-128"] * 4000)  # about 20 KB: 80 chunks, each written then flushed
    for count in range(1, len(line), len(line) // 30):
        master, slave = os.openpty()
        try:
            device = Device(os.ttyname(slave), timeout=2)
        finally:
            os.close(slave)
        far_end = _far_end_leaves_after(master, count + 1)  # +1: the newline Device sends on opening
        try:
            with pytest.raises(DeviceDisconnected):
                device.request(line)
        finally:
            device.close()
            far_end.join(5)
        assert not far_end.is_alive()


def test_a_device_that_leaves_before_answering_is_device_disconnected() -> None:
    """The request is read whole, then the far end goes while the client waits for the answer."""
    for _ in range(REPEAT):
        master, slave = os.openpty()
        try:
            device = Device(os.ttyname(slave), timeout=2)
        finally:
            os.close(slave)
        far_end = _far_end_leaves_after(master, 1 + len("id\n"))
        try:
            with pytest.raises(DeviceDisconnected) as lost:
                device.identify()
            assert str(lost.value).endswith("the device disconnected (port lost while reading)")
        finally:
            device.close()
            far_end.join(5)
