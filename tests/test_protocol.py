"""Serial protocol v1 (docs/protocol.md) against every emulated device, over its real pty.

Each test runs on the native emulation, on the same build under AddressSanitizer and
UBSan, and on the Cortex-M4 build under QEMU (skipped, naming the Debian packages, where
its toolchain is missing). The emulators run the firmware's portable core, so these tests
pin down what the board answers too. Expected strings are the spec's wherever it defines
them; numeric answers are checked against the model's own constants from `id`, so the
tests hold for whichever model is emitted into firmware/model/.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import re
import select
import subprocess
import termios
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pytest
import serial

from pipeline.device.serial_client import Identity
from pipeline.emulation import qemu
from pipeline.int8.description import Interface
import toolchains
from rawserial import HELP, ID_RE, Device
from pipeline.emulation.emulate import emulated_device

TARGETS = {"native": ("native", False), "native-sanitize": ("native", True), "qemu": ("qemu", False)}
@dataclass(frozen=True)
class Model:
    """The model as the device describes it in `id` (the shared Interface), with the firmware's
    float32 arithmetic, from which the tests predict its answers."""

    interface: Interface

    @property
    def inputs(self) -> int:
        return self.interface.inputs

    @property
    def outputs(self) -> int:
        return self.interface.outputs

    @property
    def in_scale(self) -> np.float32:
        return np.float32(self.interface.input_scale)

    @property
    def in_zp(self) -> int:
        return self.interface.input_zero_point

    @property
    def out_scale(self) -> np.float32:
        return np.float32(self.interface.output_scale)

    @property
    def out_zp(self) -> int:
        return self.interface.output_zero_point

    @property
    def lo(self) -> np.float32:
        return np.float32(self.interface.input_range[0])

    @property
    def hi(self) -> np.float32:
        return np.float32(self.interface.input_range[1])

    def quantize(self, x: float) -> int:
        with np.errstate(over="ignore"):
            q = float(np.float32(x) / self.in_scale)  # float32 division, as TFLM does
        if abs(q) > 1000:  # saturates (as float-to-int conversion does on the Cortex-M4)
            return 127 if q > 0 else -128
        r = math.floor(abs(q))
        if abs(q) - r >= 0.5:
            r += 1
        code = int(math.copysign(r, q)) + self.in_zp
        return max(-128, min(127, code))



@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> str:
    """Skips, naming the packages, a target this machine cannot build or run."""
    problem = {"native": toolchains.native_problem, "native-sanitize": toolchains.sanitize_problem,
               "qemu": lambda: qemu.toolchain_problem() or qemu.qemu_problem()}[request.param]()
    if problem:
        pytest.skip(problem)
    return request.param


@pytest.fixture(scope="module")
def port(target: str) -> Iterator[str]:
    name, sanitize = TARGETS[target]
    with emulated_device(name, sanitize=sanitize) as path:
        yield path


@pytest.fixture()
def dev(port: str) -> Iterator[Device]:
    device = Device(port)
    yield device
    device.close()


@pytest.fixture(scope="module")
def model(port: str) -> Model:
    device = Device(port)
    try:
        line = device.ask("id")
    finally:
        device.close()
    assert ID_RE.fullmatch(line), "id line does not match the spec"
    return Model(Identity.parse(line))


def values(model: Model, x: str) -> str:
    """A values request giving every input the same text."""
    return " ".join([x] * model.inputs)


def codes(model: Model, c: int) -> str:
    return "q " + " ".join([str(c)] * model.inputs)


# ---- answers --------------------------------------------------------------------------


def test_value_10_is_a_number_near_19(dev: Device, model: Model) -> None:
    answer = dev.ask(values(model, "10"))
    fields = answer.split()
    assert len(fields) == model.outputs
    ys = [float(f) for f in fields]
    assert all(math.isfinite(y) for y in ys)
    from pipeline.paths import FIRMWARE_DIR

    if '#define MODEL_NAME "neuron"' in (FIRMWARE_DIR / "model" / "model_info.h").read_text():
        assert abs(ys[0] - 19) < 1.0  # the seed's y = 2x - 1, within the int8 model's error


@pytest.mark.parametrize("x", ["10", "0", "-1", "12", "3.25", "0.1", "-0", ".5", "5.", "1e0",
                               "7.5e-1", "+4", "11.99999", "2.549019607843137"])
def test_value_answer_matches_codes_path(dev: Device, model: Model, x: str) -> None:
    """x is quantized as the spec says, run, and shown as (o - zp) * scale, exactly."""
    code = model.quantize(float(x))
    q_answer = dev.ask(codes(model, code))
    assert q_answer.startswith("q ")
    outs = [int(o) for o in q_answer[2:].split()]
    assert dev.ask(values(model, x)) == model.interface.answer_text(outs)


def test_q_codes_are_int8(dev: Device, model: Model) -> None:
    for c in (-128, -1, 0, 1, 127, model.in_zp):
        answer = dev.ask(codes(model, c))
        assert re.fullmatch(r"q( -?\d+)+", answer), answer
        outs = [int(o) for o in answer[2:].split()]
        assert len(outs) == model.outputs
        assert all(-128 <= o <= 127 for o in outs)


def test_q_accepts_signs_and_leading_zeros(dev: Device, model: Model) -> None:
    expected = dev.ask(codes(model, 5))
    assert dev.ask("q " + " ".join(["+005"] * model.inputs)) == expected
    assert dev.ask(codes(model, 0)) == dev.ask("q " + " ".join(["-0"] * model.inputs))


def test_id(dev: Device, model: Model) -> None:
    answer = dev.ask("id")
    match = ID_RE.fullmatch(answer)
    assert match, answer
    assert match["engine"] == "aot" and match["arena"] == "0"
    assert model.lo < model.hi
    assert dev.ask("?") == answer


def test_id_matches_the_emitted_model(dev: Device) -> None:
    """model=, counts and quantization are those of firmware/model/model_info.h."""
    from pipeline.paths import FIRMWARE_DIR

    header = (FIRMWARE_DIR / "model" / "model_info.h").read_text()
    macros = dict(re.findall(r"#define (MODEL_\w+) (.+)", header))
    match = ID_RE.fullmatch(dev.ask("id"))
    assert match
    assert match["model"] == macros["MODEL_ID"].strip('"')
    assert int(match["inputs"]) == int(macros["MODEL_INPUT_COUNT"])
    assert int(match["outputs"]) == int(macros["MODEL_OUTPUT_COUNT"])
    assert int(match["in_zp"]) == int(macros["MODEL_INPUT_ZERO_POINT"])
    assert int(match["out_zp"]) == int(macros["MODEL_OUTPUT_ZERO_POINT"])
    for key, macro in (("in_scale", "MODEL_INPUT_SCALE"), ("out_scale", "MODEL_OUTPUT_SCALE"),
                       ("lo", "MODEL_INPUT_MIN"), ("hi", "MODEL_INPUT_MAX")):
        assert np.float32(match[key]) == np.float32(macros[macro].rstrip("fF")), key


def test_help(dev: Device) -> None:
    assert dev.ask("help") == HELP


def test_bench(dev: Device) -> None:
    assert re.fullmatch(r"bench n=1 us=\d+", dev.ask("bench 1"))
    assert re.fullmatch(r"bench n=1000 us=\d+", dev.ask("bench 1000"))
    assert re.fullmatch(r"bench n=1000000 us=\d+", dev.ask("bench 1000000"))


def test_fields_split_on_spaces_tabs_commas(dev: Device, model: Model) -> None:
    plain = dev.ask(values(model, "10"))
    assert dev.ask(" \t" + ",\t ,".join(["10"] * model.inputs) + " ,") == plain
    assert dev.ask("  help\t") == HELP
    assert dev.ask(",bench,\t5").startswith("bench n=5 ")


# ---- clipped ---------------------------------------------------------------------------


def test_clipped_flag(dev: Device, model: Model) -> None:
    lo, hi = float(model.lo), float(model.hi)
    step = float(model.in_scale)
    inside = [lo, hi, (lo + hi) / 2]
    outside = [lo - step, hi + step, -1e30, 1e30, 3.4028235e38]
    for x in inside:
        answer = dev.ask(values(model, repr(x)))
        assert not answer.endswith("clipped") and not answer.startswith("ERR"), (x, answer)
    for x in outside:
        answer = dev.ask(values(model, repr(x)))
        assert answer.endswith(" clipped"), (x, answer)
        assert len(answer.split()) == model.outputs + 1


def test_clipped_if_any_input_is_outside(dev: Device, model: Model) -> None:
    xs = [repr(float(model.lo))] * model.inputs
    xs[-1] = repr(float(model.hi) * 2 + 1)
    assert dev.ask(" ".join(xs)).endswith(" clipped")


# ---- errors ----------------------------------------------------------------------------


def error_table(model: Model) -> list[tuple[bytes, str]]:
    n = model.inputs
    one = " ".join(["1"] * n)
    return [
        (b"", "ERR 1 empty line"),
        (b"   \t ", "ERR 1 empty line"),
        (b" , ,", "ERR 1 empty line"),
        (b"1" * 129, "ERR 3 bad number at field 1"),  # a field over 128 bytes is no number
        (b"x" * 5000, "ERR 2 line too long (max 128 bytes)"),  # a command over 128 bytes
        (b"id" + b" " * 200, "ERR 2 line too long (max 128 bytes)"),
        (b" " * 200, "ERR 2 line too long (max 128 bytes)"),  # no field: not a query
        (b"qq " + b"1 " * 100, "ERR 2 line too long (max 128 bytes)"),
        (b"q " + b"0" * 129, "ERR 5 bad code at field 1"),
        (((one + " ") * 100).encode() + b"\x7f" * 3, f"ERR 4 expected {n} values, got {100 * n}"),
        (b"q" + b" 1" * 500, f"ERR 4 expected {n} codes, got 500"),
        (((one + " ") * 60 + "x").encode(), f"ERR 3 bad number at field {60 * n + 1}"),
        (b"abc", "ERR 6 unknown command (try help)"),
        (b"0x10", "ERR 3 bad number at field 1"),
        (b"-inf", "ERR 3 bad number at field 1"),
        (b"+nan", "ERR 3 bad number at field 1"),
        (b"1e39", "ERR 3 bad number at field 1"),
        (b"-1e39", "ERR 3 bad number at field 1"),
        (b"3.5e38", "ERR 3 bad number at field 1"),
        (b"1e", "ERR 3 bad number at field 1"),
        (b"1..5", "ERR 3 bad number at field 1"),
        (b"--1", "ERR 3 bad number at field 1"),
        (b".", "ERR 3 bad number at field 1"),
        (b"-", "ERR 3 bad number at field 1"),
        (b"1 2x", "ERR 3 bad number at field 2"),
        ((one + " 5 nan").encode(), f"ERR 3 bad number at field {n + 2}"),
        ((one + " 1").encode(), f"ERR 4 expected {n} values, got {n + 1}"),
        (b"1," * (n + 1), f"ERR 4 expected {n} values, got {n + 1}"),
        (b"q", f"ERR 4 expected {n} codes, got 0"),
        (("q " + one + " 1").encode(), f"ERR 4 expected {n} codes, got {n + 1}"),
        (b"q 128", "ERR 5 bad code at field 1"),
        (b"q -129", "ERR 5 bad code at field 1"),
        (b"q 1.0", "ERR 5 bad code at field 1"),
        (b"q 1 x", "ERR 5 bad code at field 2"),
        (b"q 99999999999999999999", "ERR 5 bad code at field 1"),
        (b"nan", "ERR 6 unknown command (try help)"),
        (b"inf", "ERR 6 unknown command (try help)"),
        (b"ID", "ERR 6 unknown command (try help)"),
        (b"q5", "ERR 6 unknown command (try help)"),
        (b"??", "ERR 6 unknown command (try help)"),
        (b"bench", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench 0", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench -5", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench 1000001", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench 99999999999999999999", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench 1e3", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"bench 10 10", "ERR 8 bench N needs 1 <= N <= 1000000"),
        (b"id 1", "ERR 8 id takes no arguments"),
        (b"help me", "ERR 8 help takes no arguments"),
    ]


def test_error_table(dev: Device, model: Model) -> None:
    for request, expected in error_table(model):
        assert dev.ask(request) == expected, request


def test_error_7_when_the_engine_fails(target: str) -> None:
    name, sanitize = TARGETS[target]
    with emulated_device(name, program="tinyml_device_fault", sanitize=sanitize) as path:
        device = Device(path)
        try:
            failure = "ERR 7 engine: AllocateTensors failed (fault-injection engine)"
            identity = device.ask("id")
            assert " engine=fault " in identity  # id still answers
            inputs = int(re.search(r" inputs=(\d+) ", identity)[1])
            assert device.ask(" ".join(["1"] * inputs)) == failure
            assert device.ask("q " + " ".join(["1"] * inputs)) == failure
            assert device.ask("bench 10") == failure
            assert device.ask("bench 0") == "ERR 8 bench N needs 1 <= N <= 1000000"
            assert device.ask("help") == HELP  # still answering everything else
        finally:
            device.close()


def expected_answer(dev: Device, model: Model, x: str) -> str:
    """What values(model, x) must answer, computed through the q path and the spec."""
    outs = [int(o) for o in dev.ask(codes(model, model.quantize(float(x))))[2:].split()]
    clipped = not (model.lo <= np.float32(float(x)) <= model.hi)
    return model.interface.answer_text(outs, clipped)


def test_numbers_the_spec_accepts(dev: Device, model: Model) -> None:
    for x in ["-0", ".5", "5.", "1e2", "1E2", "1e+2", "100e-2", "+.5e1", "0.000001", "00010",
              "1" + "0" * 30 + "e-30", "0." + "0" * 60 + "1e60", "3.4028234e38", "1e-50",
              "-3.4028235e38", "12345678901234567890123456789"]:
        assert dev.ask(values(model, x)) == expected_answer(dev, model, x), x


def test_number_parsing_is_exact(dev: Device, model: Model) -> None:
    """Inputs right at a quantization step boundary land on the same side as in numpy."""
    rng = random.Random(7)
    for _ in range(200):
        code = rng.randint(-128, 126) - model.in_zp
        boundary = (code + 0.5) * float(model.in_scale)
        for x in (boundary, float(np.nextafter(np.float32(boundary), np.float32(1e9))),
                  float(np.nextafter(np.float32(boundary), np.float32(-1e9)))):
            text = repr(x)
            assert dev.ask(values(model, text)) == expected_answer(dev, model, text), text


# ---- line handling ------------------------------------------------------------------------


def test_cr_lf_crlf_mixed(dev: Device, model: Model) -> None:
    ten = dev.ask(values(model, "10"))
    one = dev.ask(values(model, "1"))
    v10, v1 = values(model, "10").encode(), values(model, "1").encode()
    dev.write(v10 + b"\r\n" + v1 + b"\n" + v10 + b"\r" + b"help\r\n" + v1 + b"\r\n")
    assert [dev.read_line() for _ in range(5)] == [ten, one, ten, HELP, one]
    dev.write(b"\n\r")  # LF then CR: two endings, two empty lines
    assert [dev.read_line() for _ in range(2)] == ["ERR 1 empty line"] * 2
    dev.write(b"\r\r\n")  # CR, then CRLF
    assert [dev.read_line() for _ in range(2)] == ["ERR 1 empty line"] * 2
    dev.write(b"\r\n\r\n")
    assert [dev.read_line() for _ in range(2)] == ["ERR 1 empty line"] * 2
    assert dev.silent()


def test_crlf_split_across_writes(dev: Device) -> None:
    dev.write(b"help\r")
    assert dev.read_line() == HELP
    time.sleep(0.1)
    dev.write(b"\nhelp\n")  # this LF belongs to the CR before it
    assert dev.read_line() == HELP
    assert dev.silent()


def test_line_of_exactly_128_bytes_is_accepted(dev: Device, model: Model) -> None:
    line = values(model, "10").encode()
    padded = line + b" " * (128 - len(line))
    assert len(padded) == 128
    assert dev.ask(padded) == dev.ask(line)
    assert dev.ask(padded + b" ") == dev.ask(line)  # a query is not limited
    help_padded = b"help" + b" " * 124
    assert dev.ask(help_padded) == HELP
    assert dev.ask(help_padded + b" ") == "ERR 2 line too long (max 128 bytes)"  # a command is


def test_a_query_of_any_length_is_answered(dev: Device, model: Model, target: str) -> None:
    """Past 128 bytes a query is parsed as its fields arrive, never stored: separators
    before, between and after the fields cost nothing, and every field is counted."""
    ten = dev.ask(values(model, "10"))
    pad = 2_000 if target == "qemu" else 50_000  # QEMU hands its UART about 10 kB/s
    spread = (" " * 150).join(values(model, "10").split())
    assert dev.ask(" " * pad + spread + "," * pad) == ten
    assert dev.ask(("q" + " " * 300 + codes(model, 0)[2:]).encode()) == dev.ask(codes(model, 0))
    many = " ".join(["10"] * (model.inputs * 700))
    assert dev.ask(many) == f"ERR 4 expected {model.inputs} values, got {model.inputs * 700}"
    assert dev.ask(values(model, "10")) == ten
    assert dev.silent()


def test_overlong_line_is_one_error_and_recovers(dev: Device, model: Model, target: str) -> None:
    # QEMU hands its UART about 10 kB/s: a shorter line proves the same there.
    size = 5_000 if target == "qemu" else 100_000
    dev.write(b"x" * size + b"\r\n")
    assert dev.read_line() == "ERR 2 line too long (max 128 bytes)"
    dev.write(b"1" * size + b"\r\n")  # one field, far past what a number can be
    assert dev.read_line() == "ERR 3 bad number at field 1"
    assert dev.ask("help") == HELP
    assert dev.silent()


def test_nul_bytes(dev: Device) -> None:
    assert dev.ask(b"\x00") == "ERR 3 bad number at field 1"
    assert dev.ask(b"1\x002") == "ERR 3 bad number at field 1"
    assert dev.ask(b"help\x00") == "ERR 6 unknown command (try help)"
    assert dev.ask(b"\x00" * 200) == "ERR 3 bad number at field 1"
    assert dev.ask("help") == HELP


def test_binary_garbage(dev: Device) -> None:
    rng = random.Random(1234)
    for _ in range(20):
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
        endings = 0
        after_cr = False
        for byte in blob + b"\n":
            if byte == 0x0A and after_cr:
                after_cr = False
                continue
            after_cr = byte == 0x0D
            endings += byte in (0x0A, 0x0D)
        dev.write(blob + b"\n")
        for _ in range(endings):
            line = dev.read_line()
            assert re.fullmatch(r"ERR [1-8] [ -~]+|[ -~]+", line), line
        assert dev.ask("help") == HELP
    assert dev.silent()


def test_high_bytes_are_not_letters(dev: Device) -> None:
    assert dev.ask("é".encode()) == "ERR 3 bad number at field 1"
    assert dev.ask(b"\xff\xfe") == "ERR 3 bad number at field 1"


def test_partial_line_then_silence_then_completion(dev: Device, model: Model) -> None:
    full = values(model, "10")
    expected = dev.ask(full)
    dev.write(full[:1].encode())
    assert dev.silent(0.5)
    dev.write(full[1:].encode())
    assert dev.silent(0.3)
    dev.write(b"\r")
    assert dev.read_line() == expected
    time.sleep(0.2)
    dev.write(b"\n")  # the rest of that CRLF: no second answer
    assert dev.silent()


def test_nothing_sent_unasked(dev: Device) -> None:
    assert dev.silent(0.5)


# ---- a person at a terminal: Backspace ---------------------------------------------------


@pytest.mark.parametrize("backspace", [b"\x08", b"\x7f"])
def test_backspace_edits_the_line(dev: Device, model: Model, backspace: bytes) -> None:
    """Backspace (0x08) and DEL (0x7f, what most terminals send) delete the line's last byte."""
    ten = dev.ask(values(model, "10"))
    assert dev.ask(values(model, "100").encode() + backspace) == ten
    assert dev.ask(values(model, "19").encode() + backspace + b"0") == ten
    assert dev.ask(b"helx" + backspace + b"p") == HELP
    assert dev.ask(b"ab" + backspace * 2) == "ERR 1 empty line"
    assert dev.ask(backspace * 3 + values(model, "10").encode()) == ten  # at line start: nothing
    assert dev.ask(b"1" + backspace * 5 + b"help") == HELP
    # it never reaches into the line before: that one was answered already
    assert dev.ask(b"help") == HELP
    assert dev.ask(backspace + b"help") == HELP
    # nor into a CRLF: a Backspace between CR and LF leaves them one line ending
    dev.write(b"help\r" + backspace + b"\n")
    assert dev.read_line() == HELP
    assert dev.silent()


def test_backspace_cannot_shorten_an_overlong_line(dev: Device) -> None:
    """Its bytes were dropped as they came: a field over 128 bytes stays a bad one, a
    command over 128 bytes stays too long."""
    assert dev.ask(b"1" * 129 + b"\x7f" * 10) == "ERR 3 bad number at field 1"
    assert dev.ask(b"help" + b" " * 125 + b"\x7f" * 10) == "ERR 2 line too long (max 128 bytes)"
    # at the limit, Backspace still edits: 127 and then 128 digits, too big for a float
    assert dev.ask(b"1" * 128 + b"\x7f") == "ERR 3 bad number at field 1"
    assert dev.ask(b"1" * 128 + b"\x7f" + b"2") == "ERR 3 bad number at field 1"
    assert dev.ask("help") == HELP


@pytest.mark.parametrize("backspace", [b"\x08", b"\x7f"])
def test_backspace_in_a_long_query_edits_the_field_being_typed(dev: Device, model: Model, backspace: bytes) -> None:
    """Past 128 bytes the fields before are parsed already: Backspace deletes the last byte of
    the field being typed, and right after a separator it does nothing."""
    ten = dev.ask(values(model, "10"))
    lead = b" " * 140
    assert dev.ask(lead + values(model, "100").encode() + backspace) == ten
    assert dev.ask(lead + values(model, "19").encode() + backspace + b"0") == ten
    assert dev.ask(lead + values(model, "10").encode() + b" " + backspace * 3) == ten
    expected = f"ERR 4 expected {model.inputs} values, got {model.inputs + 1}"
    assert dev.ask(lead + values(model, "10").encode() + b" " + backspace + b"5") == expected
    assert dev.ask(lead + values(model, "10").encode() + b" 5" + backspace * 4) == ten
    assert dev.silent()


# ---- echo ------------------------------------------------------------------------------


def test_an_echoed_answer_is_not_answered(dev: Device, model: Model) -> None:
    """An answer coming back as a tty with echo on returns it (CR kept, or turned into LF
    with LF sent as CRLF) gets no answer, so it cannot loop."""
    answer = dev.ask(values(model, "10")).encode()
    for echo in (b"\r\n", b"\r\n\r\n", b"\r\r\n", b"\r"):
        dev.write(answer + echo)
        assert dev.silent(), echo
    error = dev.ask("x").encode()
    assert error.startswith(b"ERR 6 ")
    dev.write(error + b"\r\n\r\n")
    dev.write(error + b"\n")  # an ERR line is never a request, whatever its ending
    assert dev.silent()
    assert dev.ask(values(model, "10")) == answer.decode()


def test_an_echoed_id_is_not_answered(dev: Device) -> None:
    """`id` is longer than a command may be, but its echo is recognised as it arrives (the
    device never stores it): not answered, nor the tty's extra empty line. Sent back with
    LF alone it is a request, and too long."""
    identity = dev.ask("id").encode()
    assert len(identity) > 128
    for echo in (b"\r\n", b"\r\n\r\n", b"\r\r\n", b"\r"):
        dev.write(identity + echo)
        assert dev.silent(), echo
    assert dev.ask(identity) == "ERR 2 line too long (max 128 bytes)"
    assert dev.ask(identity[:-1] + b"\r") == "ERR 2 line too long (max 128 bytes)"  # one byte short
    assert dev.ask("help") == HELP


def test_a_program_may_send_an_answer_with_lf(dev: Device, model: Model) -> None:
    """Ended by LF alone (as programs send), a repeat of the last answer is a request."""
    answer = dev.ask(values(model, "10"))
    expected = dev.ask(" " + answer)  # a leading space: never taken as an echo
    assert dev.ask(values(model, "10")) == answer
    assert dev.ask(answer) == expected
    outs = dev.ask(codes(model, 0))
    assert dev.ask(outs) == dev.ask(" " + outs)  # q O, asked back: answered


def test_a_repeat_then_an_empty_line_was_an_echo(dev: Device, model: Model) -> None:
    """A tty that echoes with output processing off (`stty -opost`) returns CRLF as LF LF:
    the repeat looked like a request and is answered, and so is the empty line after it;
    but that pair shows an echo, so the echoes of those two answers are not answered."""
    answer = dev.ask(values(model, "10"))
    second = dev.ask(answer)  # answered: it ended with LF
    assert dev.ask(b"") == "ERR 1 empty line"
    dev.write(second.encode() + b"\n\n" + b"ERR 1 empty line\n\n")
    assert dev.silent()
    assert dev.ask(values(model, "10")) == answer  # not a repeat: as before
    assert dev.ask(answer) == second  # a program's repeat is a request again


def _slave_termios_echo(fd: int) -> bool:
    return bool(termios.tcgetattr(fd)[3] & termios.ECHO)


def _read_for(fd: int, seconds: float) -> bytes:
    data = b""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], min(left, 0.1))
        if ready:
            with contextlib.suppress(BlockingIOError):
                data += os.read(fd, 65536)
    return data


@pytest.mark.parametrize("burst", [1, 20])
def test_stty_sane_on_the_port_cannot_start_an_echo_loop(port: str, model: Model, burst: int) -> None:
    """`stty -F PORT sane` turns the port's echo on: every answer would come back as a
    request, forever (hundreds of KB a second, going on after the client closes). Now the
    emulation turns echo off again before it writes, and the core drops an echo anyway."""
    device = Device(port)
    try:
        expected = [device.ask(values(model, str(x))) for x in range(burst)]
    finally:
        device.close()
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        subprocess.run(["stty", "-F", port, "sane"], check=True)
        assert _slave_termios_echo(fd)
        os.write(fd, b"".join(values(model, str(x)).encode() + b"\n" for x in range(burst)))
        got = _read_for(fd, 2.0)
        assert not _slave_termios_echo(fd)  # the emulation put the port back to raw
    finally:
        os.close(fd)
    answers = b"".join(line.encode() + b"\r\n" for line in expected)
    assert len(got) <= 2 * len(answers), f"{len(got)} bytes in 2 s: {got[:200]!r}"
    assert got.replace(b"\n\n", b"\r\n").startswith(answers), got[:200]
    device = Device(port)  # and it is quiet and answering after that client left
    try:
        assert device.silent(0.5)
        assert device.ask("help") == HELP
    finally:
        device.close()


# ---- throughput and ports --------------------------------------------------------------------


def test_flood_of_10000_queries_answered_in_order(dev: Device, model: Model) -> None:
    """Everything written before anything is read: no answer lost, none reordered."""
    table = {c: dev.ask(codes(model, c)) for c in range(-128, 128)}
    requests: list[str] = []
    expected: list[str] = []
    rng = random.Random(99)
    for i in range(10_000):
        kind = i % 5
        if kind == 4:
            requests.append("help")
            expected.append(HELP)
        elif kind == 3:
            requests.append("")
            expected.append("ERR 1 empty line")
        else:
            c = rng.randint(-128, 127)
            requests.append(codes(model, c))
            expected.append(table[c])
    endings = [b"\n", b"\r\n", b"\r"]
    chunks = []
    for i, request in enumerate(requests):
        ending = endings[i % 3]
        if not request and chunks and chunks[-1].endswith(b"\r"):
            ending = b"\r"  # an LF right after a CR would only finish that CR's line
        if request.startswith("q") and ending != b"\n":
            request = " " + request  # CR-ended, it could repeat a recent answer: an echo
        chunks.append(request.encode() + ending)
    payload = b"".join(chunks)
    dev.serial.write_timeout = 60
    dev.write(payload)
    got = dev.read_lines(len(requests), timeout=60)
    assert got == expected
    assert dev.silent()


def test_reopen_port_many_times(port: str) -> None:
    for _ in range(10):
        device = Device(port)
        try:
            assert device.ask("help") == HELP
        finally:
            device.close()


def test_close_with_unread_answers_then_reopen(port: str, model: Model) -> None:
    device = Device(port)
    device.write((values(model, "10") + "\n").encode() * 50)
    time.sleep(0.3)
    device.close()  # 50 answers never read
    device = Device(port)  # opening flushes stale input (pyserial does)
    try:
        assert device.ask("help") == HELP
    finally:
        device.close()


def test_two_quick_opens_without_traffic(port: str) -> None:
    for _ in range(20):
        serial.Serial(port, timeout=0.1).close()
    device = Device(port)
    try:
        assert device.ask("id").startswith("id proto=1 ")
    finally:
        device.close()
