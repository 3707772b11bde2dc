"""The firmware on an emulated Cortex-M4 (qemu-system-arm -M mps2-an386), over its pty.

The image is built with arm-none-eabi-gcc and the Nano 33 BLE's CPU flags from the same
core, engine and model sources as the board; only the platform layer differs. These tests
check what is QEMU's own: the image, its answers against the TFLM oracle and the native
emulation, long bursts, deterministic cost, and fault reports. The protocol table itself
runs on this target in tests/test_protocol.py. Skipped, naming the
Debian packages, when the cross toolchain or QEMU is missing.
"""
from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from pipeline.device import deployed
from pipeline.int8 import oracle
from pipeline.emulation import qemu
import rawserial
from rawserial import HELP, ID_RE

_problem = qemu.toolchain_problem() or qemu.qemu_problem()
if _problem:
    pytest.skip(f"QEMU tests need the cross toolchain and QEMU: {_problem}", allow_module_level=True)

FAULT_RE = re.compile(
    r"FAULT hardfault pc=0x(?P<pc>[0-9a-f]{8}) lr=0x[0-9a-f]{8} xpsr=0x[0-9a-f]{8} cfsr=0x(?P<cfsr>[0-9a-f]{8}) "
    r"hfsr=0x[0-9a-f]{8} mmfar=0x[0-9a-f]{8} bfar=0x(?P<bfar>[0-9a-f]{8}) exc_return=0x[0-9a-f]{8} "
    r"cause=(?P<cause>[a-z+]+)")


class Device(rawserial.Device):
    """The protocol tests' client, plus a batch helper."""

    def ask_many(self, lines: list[bytes], timeout: float = 60.0) -> list[str]:
        """All requests written at once (each ending in LF), then all answers read."""
        self.serial.write_timeout = timeout
        self.write(b"".join(line + b"\n" for line in lines))
        return self.read_lines(len(lines), timeout)

    def silent(self, seconds: float = 0.3) -> bool:
        time.sleep(seconds)
        return self.serial.in_waiting == 0


@pytest.fixture(scope="module")
def elf() -> Path:
    return qemu.build()


@pytest.fixture(scope="module")
def port(elf: Path) -> Iterator[str]:
    with qemu.running(elf) as path:
        yield path


@pytest.fixture()
def dev(port: str) -> Iterator[Device]:
    device = Device(port)
    yield device
    device.close()


@pytest.fixture(scope="module")
def model() -> deployed.DeployedModel:
    return deployed.load()


@pytest.fixture(scope="module")
def native_port() -> Iterator[str]:
    """The native emulation, to compare answers with; skipped if it cannot be built here."""
    from pipeline.emulation.emulate import EmulationError, emulated_device

    try:
        context = emulated_device("native")
        path = context.__enter__()
    except EmulationError as error:
        pytest.skip(f"native emulation unavailable: {error}")
    try:
        yield path
    finally:
        context.__exit__(None, None, None)


# ---- build -------------------------------------------------------------------------------


def test_image_is_a_cortex_m4f_elf(elf: Path) -> None:
    header = elf.read_bytes()[:52]
    assert header[:4] == b"\x7fELF" and header[4] == 1  # 32-bit
    assert int.from_bytes(header[18:20], "little") == 40  # EM_ARM
    flags = int.from_bytes(header[36:40], "little")
    assert flags & 0x400, "not built for the hard-float ABI"  # EF_ARM_ABI_FLOAT_HARD
    assert elf.with_suffix(".map").is_file()


def test_missing_toolchain_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = qemu.shutil.which
    monkeypatch.setattr(qemu.shutil, "which",
                        lambda name, *a, **k: None if "arm-none-eabi" in name or "qemu" in name
                        else real_which(name, *a, **k))
    with pytest.raises(qemu.QemuError) as caught:
        qemu.build()
    message = str(caught.value)
    assert "\n" not in message
    for package in ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"):
        assert package in message
    assert qemu.qemu_problem() is not None and "qemu-system-arm" in qemu.qemu_problem()


def test_command_line(elf: Path) -> None:
    cmd = qemu.command(elf, icount=True)
    assert cmd[:3] == ["qemu-system-arm", "-M", "mps2-an386"]
    assert "-kernel" in cmd and str(elf.resolve()) in cmd
    assert cmd[cmd.index("-serial") + 1] == "pty"
    assert cmd[cmd.index("-icount") + 1] == "shift=0"
    assert "-icount" not in qemu.command(elf)


# ---- answers -------------------------------------------------------------------------------


def test_id_names_the_aot_engine_and_the_emitted_model(dev: Device, model: deployed.DeployedModel) -> None:
    match = ID_RE.fullmatch(dev.ask("id"))
    assert match
    assert match["engine"] == "aot" and match["arena"] == "0"
    assert match["model"] == model.id
    assert int(match["inputs"]) == model.inputs and int(match["outputs"]) == model.outputs
    assert dev.ask("?") == dev.ask("id")


def test_value_10(dev: Device, model: deployed.DeployedModel) -> None:
    answer = dev.ask(" ".join(["10"] * model.inputs))
    codes = model.quantize(np.full((1, model.inputs), 10.0))
    outs, _ = oracle.int8_outputs(model.tflite, codes)
    assert answer == model.description.answer_text(outs[0])
    if model.inputs == 1 and model.outputs == 1:
        assert abs(float(answer) - 19) < 0.1  # y = 2x - 1; the seed model answers 18.94
        if model.meta.get("name", "neuron") == "neuron" and model.id == "05068326d617":
            assert answer == "18.9395"


def test_q_every_input_code_matches_the_tflm_oracle(dev: Device, model: deployed.DeployedModel) -> None:
    rows = [np.full(model.inputs, c, dtype=np.int8) for c in range(-128, 128)]
    rng = np.random.default_rng(5)
    if model.inputs > 1:
        rows += list(rng.integers(-128, 128, size=(256, model.inputs), dtype=np.int8))
    codes = np.stack(rows)
    expected, oracle_name = oracle.int8_outputs(model.tflite, codes)
    answers = dev.ask_many([("q " + " ".join(str(int(c)) for c in row)).encode() for row in codes])
    for row, answer, want in zip(codes, answers, expected):
        assert answer == "q " + " ".join(str(int(o)) for o in want), (row, answer, oracle_name)


def test_help_and_bench(dev: Device) -> None:
    assert dev.ask("help") == HELP
    for n in (1, 1000, 1000000):
        assert re.fullmatch(rf"bench n={n} us=\d+", dev.ask(f"bench {n}"))


# ---- same behaviour as the native emulation ----------------------------------------------------

REQUESTS = [
    b"", b"   \t ", b" , ,", b"1" * 129, b"1" * 128, b"x" * 500, b"abc", b"0x10", b"-inf", b"+nan", b"1e39",
    b"-1e39", b"3.5e38", b"1e", b"1..5", b"--1", b".", b"-", b"1 2x", b"1 1", b"1,1,", b"q", b"q 1 1",
    b"q 128", b"q -129", b"q 1.0", b"q 1 x", b"q 99999999999999999999", b"nan", b"inf", b"ID", b"q5", b"??",
    b"bench", b"bench 0", b"bench -5", b"bench 1000001", b"bench 1e3", b"bench 10 10", b"id 1", b"help me",
    b"\x00", b"1\x002", b"help\x00", b"\x00" * 200, "é".encode(), b"\xff\xfe", b"-0", b".5", b"5.", b"1e2",
    b"+.5e1", b"0.000001", b"1" + b"0" * 30 + b"e-30", b"3.4028234e38", b"1e-50", b"-3.4028235e38",
    b"12345678901234567890123456789", b" \t10 ,", b"q +005", b"q -0", b"-1", b"12", b"12.1", b"-1.1",
    b"3.25", b"11.99999", b"2.549019607843137", b"1e30", b"-1e30", b"help", b"id", b"?",
]


def test_same_answers_as_native(dev: Device, native_port: str) -> None:
    """Every request of the list, and its answer, byte for byte as the native build gives."""
    native = Device(native_port)
    try:
        rng = random.Random(3)
        blobs = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))).replace(b"\n", b"")
                 .replace(b"\r", b"") for _ in range(20)]
        requests = REQUESTS + blobs + [f"{x / 7:.6f}".encode() for x in range(-14, 100, 3)]
        for request in requests:
            assert dev.ask(request) == native.ask(request), request
    finally:
        native.close()


# ---- the serial port under load and reconnection --------------------------------------------------


def test_long_burst_loses_no_byte(dev: Device, model: deployed.DeployedModel) -> None:
    """A 20 kB line arrives in one write: a query of 10,000 fields, parsed as they arrive and
    counted to the last, so its one answer shows that every byte was received (the UART
    holds one; QEMU waits until it is read); a 20 kB command is one ERR 2; then the next
    requests are answered exactly once."""
    dev.serial.write_timeout = 60
    dev.write(b"7 " * 10000 + b"\n" + b"x" * 20000 + b"\n" + b"help\n" * 50)
    assert dev.read_lines(52, timeout=60) == [f"ERR 4 expected {model.inputs} values, got 10000",
                                              "ERR 2 line too long (max 128 bytes)"] + [HELP] * 50
    assert dev.silent()


# ---- deterministic time, faults, engine errors ---------------------------------------------------------


def test_icount_makes_bench_deterministic(elf: Path) -> None:
    """-icount shift=0: 1 ns of virtual time per instruction, so bench repeats exactly and
    grows linearly with N."""
    with qemu.running(elf, icount=True) as path:
        device = Device(path)
        try:
            first = [device.ask(f"bench {n}") for n in (1000, 1000, 2000, 4000)]
        finally:
            device.close()
    us = [int(re.fullmatch(r"bench n=\d+ us=(\d+)", a)[1]) for a in first]
    # The same work takes the same time, and 2000 more inferences twice 1000 more, to the
    # microsecond the clock truncates to (where a reading starts within a microsecond varies).
    assert us[0] > 0 and abs(us[0] - us[1]) <= 1
    assert abs((us[3] - us[2]) - 2 * (us[2] - us[0])) <= 3


def symbol_range(elf: Path, name: str) -> tuple[int, int]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    match = re.search(rf"^([0-9a-f]+) ([0-9a-f]+) [Tt] {name}$", out, re.M)
    assert match, f"{name} not in {elf.name}"
    start = int(match[1], 16)
    return start, start + int(match[2], 16)


@pytest.mark.parametrize("request_line, cause", [("q 0", "undefinstr"), ("q 1", "preciserr")])
def test_fault_is_reported(request_line: str, cause: str) -> None:
    """An engine that crashes the CPU: the firmware prints one FAULT line naming the
    faulting instruction and the cause, then stays silent."""
    crash = qemu.build(image="tinyml_qemu_crash")
    lo, hi = symbol_range(crash, "engine_invoke")
    with qemu.running(crash) as path:
        device = Device(path)
        try:
            assert device.ask("help") == HELP
            line = device.ask(request_line)
            match = FAULT_RE.fullmatch(line)
            assert match, line
            assert match["cause"] == cause
            assert lo <= int(match["pc"], 16) < hi  # the faulting instruction, in engine_invoke
            if cause == "preciserr":
                assert match["bfar"] == "f0000000"
            device.write(b"help\n")
            assert device.silent(0.5)  # halted
        finally:
            device.close()


def test_stopping_leaves_no_emulator(elf: Path) -> None:
    process, path = qemu.start(elf)
    assert Path(path).exists()
    assert qemu.stop(process) == 0
    assert process.poll() is not None
