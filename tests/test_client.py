"""The serial client, predict and verify against a real device: the native emulation behind a
pty by default, or a board with `pytest --port /dev/ttyACM0`. No mocks: the odd ports are real
pseudo-terminals with nothing, or something else, on the other end."""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import pytest
from serial.tools import list_ports

from pipeline.device import connect
from pipeline.emulation import emulate
from pipeline.int8 import oracle
from pipeline.device.deployed import DeployedModel, load
from pipeline.device.serial_client import (Device, DeviceDisconnected, DeviceTimeout, Identity,
                                    NoDeviceFound, NotOurDevice, ProtocolError, find_nano33ble)
from pipeline.device.verify import verify

ROOT = Path(__file__).resolve().parent.parent
PRINTED = re.compile(r"^-?\d+(\.\d{1,4})?( -?\d+(\.\d{1,4})?)*( clipped)?$")


def run_tool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


# -- identity and answers -------------------------------------------------------------

def test_identify_matches_model_json(device: Device, model: DeployedModel) -> None:
    identity = device.identify()
    meta = model.meta
    assert identity.proto == 1
    assert identity.model == model.id == meta["sha256"][:12]
    assert identity.engine in ("aot", "tflm")
    assert (identity.inputs, identity.outputs) == (meta["inputs"], meta["outputs"])
    assert identity.input_scale == pytest.approx(meta["input"]["scale"], rel=1e-5)
    assert identity.output_scale == pytest.approx(meta["output"]["scale"], rel=1e-5)
    assert (identity.input_zero_point, identity.output_zero_point) == (meta["input"]["zero_point"],
                                                                        meta["output"]["zero_point"])
    assert identity.input_range == pytest.approx(tuple(meta["input_range"]), abs=1e-4)
    if identity.engine == "aot":
        assert identity.arena == 0
    else:
        assert 0 < identity.arena <= meta["arena_bytes"]


def test_predict_10_is_close_to_19(device: Device, model: DeployedModel) -> None:
    if model.inputs != 1:
        pytest.skip("the lesson's x = 10 needs the one-input seed model")
    answer = device.predict([10])
    assert not answer.clipped
    assert answer.values[0] == pytest.approx(19, abs=0.2)
    code = device.predict_codes([int(model.quantize(np.array([10.0]))[0])])
    assert answer.values[0] == pytest.approx(float(model.dequantize(np.array(code))[0]), abs=5e-5)


def test_outside_the_range_is_flagged_clipped(device: Device, model: DeployedModel) -> None:
    lo, hi = model.input_range
    inside = device.predict([(lo + hi) / 2] * model.inputs)
    above = device.predict([hi + (hi - lo)] * model.inputs)
    assert not inside.clipped and above.clipped
    assert above.text.endswith(" clipped")


def test_pipelined_answers_keep_request_order(device: Device, model: DeployedModel) -> None:
    codes, _ = model.sweep
    rows = codes.tolist()
    one_by_one = [device.predict_codes(r) for r in rows]
    assert device.predict_codes_many(rows, window=7) == one_by_one
    assert device.predict_codes_many(rows[::-1] * 4, window=64) == one_by_one[::-1] * 4
    want, _ = oracle.int8_outputs(model.tflite, codes)
    assert np.array_equal(np.array(one_by_one, dtype=np.int8), np.asarray(want).reshape(len(rows), -1))


def test_a_request_longer_than_a_write_chunk_is_sent_in_chunks_and_answered(device: Device,
                                                                           model: DeployedModel) -> None:
    """The client writes at most WRITE_CHUNK bytes at a time (the board's USB serial buffer);
    a query of 40 kB (blanks between the fields) is the same query, answered once."""
    from pipeline.device.serial_client import WRITE_CHUNK
    ten = device.predict([10.0] * model.inputs).text
    padded = (" " * 20_000) + " ".join(["10"] * model.inputs) + (" " * 20_000)
    assert len(padded) > 100 * WRITE_CHUNK
    assert device.request(padded) == ten
    rows = [[(7 * i + j) % 256 - 128 for j in range(model.inputs)] for i in range(50)]
    assert device.predict_codes_many(rows, window=50) == [device.predict_codes(r) for r in rows]


def test_err_lines_raise_and_keep_the_device_in_step(device: Device, model: DeployedModel) -> None:
    with pytest.raises(ProtocolError) as wrong_count:
        device.predict([1.0] * (model.inputs + 1))
    assert wrong_count.value.code == 4
    with pytest.raises(ProtocolError) as unknown:
        device.request("frobnicate")
    assert unknown.value.code == 6 and "unknown command" in unknown.value.reason
    good = [0] * model.inputs
    rows = [good] * 10 + [good + [0]] + [good] * 10
    with pytest.raises(ProtocolError) as bad_row:
        device.predict_codes_many(rows, window=8)
    assert bad_row.value.code == 4 and "row 10" in str(bad_row.value)
    assert device.predict_codes_many([good] * 3) == [device.predict_codes(good)] * 3
    with pytest.raises(ValueError, match="row 40"):  # caught here, before it is sent
        device.predict_codes_many([good] * 40 + [[999] * model.inputs] + [good] * 40, window=16)
    assert device.predict_codes_many([good] * 3) == [device.predict_codes(good)] * 3
    assert device.identify().proto == 1


def test_bench_times_inferences(device: Device) -> None:
    result = device.bench(100)
    assert result.n == 100 and result.us >= 0


def test_client_refuses_bad_input_before_sending(device: Device) -> None:
    with pytest.raises(ValueError):
        device.predict([float("nan")])
    with pytest.raises(ValueError):
        device.predict_codes([128])
    assert device.identify().proto == 1


def test_identity_parse_keeps_unknown_fields() -> None:
    line = ("id proto=1 model=0123456789ab engine=tflm inputs=2 outputs=3 in_scale=0.5 in_zp=-1 "
            "out_scale=0.25 out_zp=7 range=-2.5:3 arena=1104 board=nano33ble")
    identity = Identity.parse(line)
    assert identity.input_range == (-2.5, 3.0) and identity.arena == 1104
    assert identity.extra == {"board": "nano33ble"}
    with pytest.raises(ValueError):
        Identity.parse("id proto=1 model=0123456789ab")


# -- verify -----------------------------------------------------------------------------

def test_verify_passes_with_no_mismatches(device: Device, model: DeployedModel) -> None:
    result = verify(device, model)
    assert result.mismatches == 0
    assert result.ok, [c for c in result.checks if not c.passed]
    assert result.rows == len(model.sweep[0])
    assert result.device_vs_float["max_lsb"] <= model.meta["tolerance"]["max_lsb"]
    assert result.oracle == ("tflm" if oracle.tflm_available() else "reference")


def test_verify_cli_prints_table_and_verdict(device_port: str) -> None:
    done = run_tool("pipeline.verify", "--port", device_port)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1])
    for metric in ("MAE", "RMSE", "max abs", "max LSB", "L2 rel", "cosine"):
        assert metric in done.stdout
    assert re.search(r"int8 mismatches vs \w+: 0 of \d+ rows", done.stdout)


# -- predict CLI ------------------------------------------------------------------------

def test_predict_cli_prints_one_line_per_query(device_port: str, model: DeployedModel) -> None:
    if model.inputs != 1:
        pytest.skip("written for a one-input model")
    lo, hi = model.input_range
    done = run_tool("pipeline.predict", "--port", device_port, "10", "-1", f"{hi + 1:g}", "-1e0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all(PRINTED.match(line) for line in lines), lines
    assert float(lines[0]) == pytest.approx(19, abs=0.2)
    assert lines[1] == lines[3] and not lines[1].endswith("clipped")
    assert lines[2].endswith(" clipped")

    codes = run_tool("pipeline.predict", "--port", device_port, "--codes", "0", "-128")
    assert codes.returncode == 0, codes.stderr
    assert [int(c) for c in codes.stdout.split()] == \
        np.asarray(oracle.int8_outputs(model.tflite, np.array([[0], [-128]]))[0]).ravel().tolist()


def test_predict_cli_errors_are_one_line(device_port: str, model: DeployedModel) -> None:
    wrong = run_tool("pipeline.predict", "--port", device_port, ",".join(["1"] * (model.inputs + 1)))
    assert wrong.returncode == 2 and wrong.stdout == ""  # bad arguments
    assert len(wrong.stderr.splitlines()) == 1 and "input" in wrong.stderr
    missing = run_tool("pipeline.predict", "--port", "/dev/no-such-port", "1")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: /dev/no-such-port: no such serial port"


def test_predict_without_values_answers_each_line(device_port: str, model: DeployedModel) -> None:
    if model.inputs != 1:
        pytest.skip("written for a one-input model")
    done = subprocess.run([sys.executable, "-m", "pipeline.predict", "--port", device_port], cwd=ROOT,
                          input="10\n\nq -128\nten\n1 2\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["18.9395", "q -128", "ERR 6 unknown command (try help)",
                                        "ERR 4 expected 1 values, got 2"]


def test_predict_at_a_terminal_edits_lines_locally(device_port: str, model: DeployedModel) -> None:
    """A person at a real terminal: a prompt, Backspace edits the line before it is sent, Ctrl-D ends."""
    if model.inputs != 1:
        pytest.skip("written for a one-input model")
    master, slave = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pipeline.predict", "--port", device_port], cwd=ROOT,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, count: int = 1) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while seen.count(marker) < count:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 4096)

    try:
        read_until(b"> ")
        os.write(master, b"100\x7f\r")  # 100, Backspace, Enter: the device is sent 10
        read_until(b"18.9395")
        read_until(b"> ", 2)  # readline takes the terminal again only at its next prompt
        os.write(master, b"\x04")  # Ctrl-D
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert b"ERR" not in seen


# -- stale firmware ---------------------------------------------------------------------

@pytest.fixture
def stale_model_dir(tmp_path: Path, model: DeployedModel) -> Path:
    """A copy of the local build whose flatbuffer changed: the device now runs a stale model."""
    tflite = model.tflite + b"\0" * 8  # trailing bytes: still a readable flatbuffer
    digest = hashlib.sha256(tflite).hexdigest()
    meta = dict(model.meta, sha256=digest, id=digest[:12])
    (tmp_path / "model.tflite").write_bytes(tflite)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    return tmp_path


def test_predict_refuses_stale_firmware(device_port: str, stale_model_dir: Path) -> None:
    stale_id = load(stale_model_dir).id
    done = run_tool("pipeline.predict", "--port", device_port, "--model-dir", str(stale_model_dir), "1")
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "stale" in done.stderr and stale_id in done.stderr and "upload" in done.stderr
    assert "Traceback" not in done.stderr
    allowed = run_tool("pipeline.predict", "--port", device_port, "--model-dir", str(stale_model_dir),
                       "--allow-stale", "1")
    assert allowed.returncode == 0 and PRINTED.match(allowed.stdout.strip())


def test_verify_refuses_stale_firmware(device_port: str, device: Device, stale_model_dir: Path) -> None:
    stale = load(stale_model_dir)
    result = verify(device, stale)
    assert not result.ok and [c.name for c in result.checks if not c.passed] == ["model id"]
    allowed = verify(device, stale, allow_stale=True)
    assert allowed.ok and allowed.warnings
    device.close()  # frees the port for the CLI
    done = run_tool("pipeline.verify", "--port", device_port, "--model-dir", str(stale_model_dir))
    assert done.returncode == 1 and "stale" in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lesson's two-layer model, emitted outside firmware/model."""
    out = tmp_path_factory.mktemp("two-layer")
    built = run_tool("pipeline.build", "--model", "two-layer", "--out", str(out / "model"),
                     "--report-dir", str(out / "report"), "--no-footprint", "-q", timeout=300)
    assert built.returncode == 0, built.stderr
    return out / "model"


@pytest.mark.parametrize("tool", ["pipeline.verify", "pipeline.predict"])
def test_emulate_runs_the_model_dir_given(request: pytest.FixtureRequest, other_model_dir: Path, tool: str) -> None:
    """--emulate builds the firmware from --model-dir, not from firmware/model, so it is not stale."""
    request.getfixturevalue("native_tools")
    other = load(other_model_dir)
    assert other.id != load().id
    args = [tool, "--emulate", "native", "--model-dir", str(other_model_dir)]
    done = run_tool(*args, *(["10"] if tool == "pipeline.predict" else []), timeout=300)
    assert done.returncode == 0, done.stderr
    if tool == "pipeline.verify":
        assert f"model {other.id}" in done.stdout and done.stdout.splitlines()[-1].endswith(" 0 failed")
    else:
        assert done.stdout.strip() == "18.9647"  # the two-layer model's int8 answer at x = 10


def test_tflm_root_from_the_environment_is_used(tmp_path: Path) -> None:
    """$TFLM_ROOT selects the TFLM engine for --emulate; a wrong one is named, never ignored."""
    env = dict(os.environ, TFLM_ROOT=str(tmp_path / "no-tree"))
    done = subprocess.run([sys.executable, "-m", "pipeline.predict", "--emulate", "native", "10"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == f"error: --tflm-root {tmp_path / 'no-tree'} is not a directory"


def test_check_fresh() -> None:
    connect.check_fresh("abc", "abc", allow_stale=False)
    connect.check_fresh("abc", "def", allow_stale=True)
    with pytest.raises(connect.StaleFirmware, match="rebuild and upload"):
        connect.check_fresh("abc", "def", allow_stale=False)


# -- ports that are not our device ------------------------------------------------------

@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    """A real pseudo-terminal: (master fd, slave path)."""
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_silent_port_is_not_our_device_and_does_not_hang() -> None:
    with pty_pair() as (_, path):
        start = time.monotonic()
        with Device(path, timeout=0.5) as device, pytest.raises(NotOurDevice) as error:
            device.identify()
        assert time.monotonic() - start < 2.0
        assert isinstance(error.value.__cause__, DeviceTimeout)
        with Device(path, timeout=0.3) as device, pytest.raises(DeviceTimeout):
            device.predict_codes([0])


def test_chatty_port_is_not_our_device() -> None:
    """Something else answers every line (another firmware, a modem): not protocol v1."""
    with pty_pair() as (master, path):
        stop = threading.Event()

        def answer() -> None:
            while not stop.is_set():
                if not select.select([master], [], [], 0.05)[0]:
                    continue
                data = os.read(master, 256)
                for _ in range(data.count(b"\n")):
                    os.write(master, b"OK ready\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        start = time.monotonic()
        try:
            with Device(path, timeout=0.5) as device, pytest.raises(NotOurDevice):
                device.identify()
            with Device(path, timeout=0.5) as device, pytest.raises(ProtocolError):
                device.predict_codes([0])
        finally:
            stop.set()
            thread.join()
        assert time.monotonic() - start < 3.0


def test_slow_device_times_out_and_cli_says_so_in_one_line() -> None:
    """A device that answers, but later than the timeout: a clear timeout, never a hang."""
    with pty_pair() as (master, path):
        stop = threading.Event()

        def answer_late() -> None:
            while not stop.is_set():
                if not select.select([master], [], [], 0.05)[0]:
                    continue
                data = os.read(master, 256)
                for _ in range(data.count(b"\n")):
                    if stop.wait(1.5):
                        return
                    os.write(master, b"q 0\r\n")

        thread = threading.Thread(target=answer_late, daemon=True)
        thread.start()
        try:
            start = time.monotonic()
            with Device(path, timeout=0.4) as device, pytest.raises(DeviceTimeout):
                device.predict_codes([0])
            assert time.monotonic() - start < 2.5
            run = subprocess.run([sys.executable, "-m", "pipeline.predict", "--port", path, "--timeout", "0.4", "10"],
                                 capture_output=True, text=True, timeout=30)
            assert run.returncode == 1 and run.stdout == ""
            assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
            assert "error:" in run.stderr
        finally:
            stop.set()
            thread.join()


def _usb(device: str, vid: int | None, pid: int | None) -> SimpleNamespace:
    return SimpleNamespace(device=device, vid=vid, pid=pid)


SKETCH, BOOTLOADER = 0x805A, 0x005A
DISCOVERY = [
    ("one sketch among other ports", [_usb("/dev/ttyS0", None, None), _usb("/dev/ttyUSB0", 0x0403, 0x6001),
                                      _usb("/dev/ttyACM1", 0x2341, SKETCH)], "/dev/ttyACM1"),
    ("sketch beside an Uno", [_usb("/dev/ttyACM0", 0x2341, 0x0043), _usb("/dev/ttyACM3", 0x2341, SKETCH)], "/dev/ttyACM3"),
    ("none", [_usb("/dev/ttyS0", None, None)], "no Arduino Nano 33 BLE found (USB 2341:805a)"),
    ("nothing at all", [], "no Arduino Nano 33 BLE found"),
    ("bootloader only", [_usb("/dev/ttyACM0", 0x2341, BOOTLOADER)], "/dev/ttyACM0 is in its bootloader"),
    ("sketch and a board in its bootloader", [_usb("/dev/ttyACM0", 0x2341, BOOTLOADER),
                                              _usb("/dev/ttyACM2", 0x2341, SKETCH)], "/dev/ttyACM2"),
    ("several boards", [_usb("/dev/ttyACM2", 0x2341, SKETCH), _usb("/dev/ttyACM0", 0x2341, SKETCH)],
     "several Arduino Nano 33 BLE boards found (/dev/ttyACM0, /dev/ttyACM2): choose one with --port"),
]


@pytest.mark.parametrize("ports,expected", [c[1:] for c in DISCOVERY], ids=[c[0] for c in DISCOVERY])
def test_find_nano33ble_discovery(monkeypatch: pytest.MonkeyPatch, ports: list, expected: str) -> None:
    monkeypatch.setattr(list_ports, "comports", lambda: ports)
    if expected.startswith("/dev/") and " " not in expected:
        assert find_nano33ble() == expected
    else:
        with pytest.raises(NoDeviceFound) as error:
            find_nano33ble()
        assert expected in str(error.value)


# -- a device that vanishes -------------------------------------------------------------

def test_device_vanishing_mid_query_raises_quickly(request: pytest.FixtureRequest,
                                                   real_port: str | None) -> None:
    """The emulator is killed (as if unplugged) while a long pipelined query runs."""
    if real_port:
        pytest.skip("cannot unplug a real board from a test")
    request.getfixturevalue("native_tools")
    emulation = emulate.start("native")
    try:
        with Device(emulation.port, timeout=1.0) as device:
            assert device.identify().proto == 1
            endless = ([(i % 256) - 128] for i in itertools.count())
            killer = threading.Timer(0.3, emulation.process.send_signal, (signal.SIGKILL,))
            start = time.monotonic()
            killer.start()
            with pytest.raises((DeviceDisconnected, DeviceTimeout)):
                device.predict_codes_many(endless, window=32)
            assert time.monotonic() - start < 5.0
            assert emulation.process.wait(timeout=5) == -signal.SIGKILL
            start = time.monotonic()
            with pytest.raises((DeviceDisconnected, DeviceTimeout)):
                device.predict_codes([0])
            assert time.monotonic() - start < 2.0
    finally:
        emulation.stop(check=False)


def test_an_answer_waits_for_the_models_work() -> None:
    """Without --timeout, each answer waits 2 s and 1 us more per multiply-accumulate: a keyword spotter
    of 2.66 million MACs on QEMU's portable AOT kernels takes longer than 2 s; --timeout overrides."""
    import argparse
    import op_models
    from pipeline.device import connect
    from pipeline.int8 import ops, tflite_model
    model = op_models.conv(1, 49, 10, 16, 64, kernel=(10, 4), stride=(2, 2))
    macs = ops.macs(tflite_model.read(model))
    assert macs == 25 * 5 * 64 * 10 * 4 * 16
    assert connect.answer_timeout(argparse.Namespace(timeout=None), model) == pytest.approx(2.0 + macs * 1e-6)
    assert connect.answer_timeout(argparse.Namespace(timeout=None), None) == 2.0
    assert connect.answer_timeout(argparse.Namespace(timeout=0.5), model) == 0.5
