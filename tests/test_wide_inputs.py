"""Inputs of any width: a 714-input model (an IMU window, 119 samples x 6 axes, the Nano 33
BLE gesture model's shape) built from a CSV the test writes, run on the native emulation
and on the Cortex-M4 under QEMU. Its queries are kilobytes long, far past the 128 bytes a
stored line holds: the firmware parses them as their fields arrive, and the client sends
them in chunks the board's USB serial takes. The device's codes equal tflite_micro's row
for row, and `predict` and `verify` work on both targets."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import toolchains
from pipeline import build
from pipeline.device import deployed
from pipeline.device.deployed import DeployedModel
from pipeline.device.serial_client import WRITE_CHUNK, Device, ProtocolError
from pipeline.emulation import qemu
from pipeline.emulation.emulate import emulated_device
from pipeline.int8 import oracle

ROOT = Path(__file__).resolve().parent.parent
SAMPLES, AXES = 119, 6
INPUTS = SAMPLES * AXES
GESTURES = ("idle", "wave", "punch", "flex", "circle")


def imu_windows(path: Path, per_class: int = 60, seed: int = 7) -> Path:
    """Five classes of noisy six-axis windows: each a sine of its own frequency and amplitude
    per axis, row-major (sample by sample, the six axes of each together), then the label."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, SAMPLES)
    rows = []
    for k, label in enumerate(GESTURES):
        for _ in range(per_class):
            phase = rng.uniform(0.0, 2 * np.pi)
            window = np.stack([(0.5 + 0.3 * k) * np.sin(2 * np.pi * (1 + k) * t + phase + axis) * (1 if axis % 2 else 0.5)
                               for axis in range(AXES)], axis=1)
            window += rng.normal(0.0, 0.3, size=window.shape)
            rows.append(",".join(f"{v:.3f}" for v in window.ravel()) + "," + label)
    order = rng.permutation(len(rows))
    path.write_text("\n".join(rows[i] for i in order) + "\n", encoding="ascii")
    return path


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wide")
    out = folder / "model"
    status = build.main(["-q", "--no-footprint", "--data", str(imu_windows(folder / "imu.csv")),
                         "--hidden", "50,15", "--activation", "relu", "--optimizer", "adam", "--lr", "0.001",
                         "--epochs", "50", "--out", str(out), "--report-dir", str(folder / "report")])
    assert status == 0
    return out


@pytest.fixture(scope="module")
def model(wide: Path) -> DeployedModel:
    return deployed.load(wide)


TARGETS = ("native", "qemu")


def _problem(target: str) -> str | None:
    if target == "native":
        return toolchains.native_problem()
    return qemu.toolchain_problem() or qemu.qemu_problem()


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    problem = _problem(request.param)
    if problem:
        pytest.skip(problem)
    return request.param


@pytest.fixture(scope="module")
def port(target: str, wide: Path) -> Iterator[str]:
    with emulated_device(target, model_dir=wide, timeout=60.0) as path:
        yield path


@pytest.fixture
def device(port: str) -> Iterator[Device]:
    with Device(port, timeout=10.0) as opened:
        opened.identify()
        yield opened


def run_tool(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_the_build_has_714_inputs(wide: Path, model: DeployedModel) -> None:
    meta = json.loads((wide / "model.json").read_text(encoding="utf-8"))
    assert meta["inputs"] == INPUTS == model.inputs and meta["outputs"] == len(GESTURES)
    assert "#define MODEL_INPUT_COUNT 714" in (wide / "model_info.h").read_text()


def test_the_device_says_714_inputs(device: Device, model: DeployedModel) -> None:
    identity = device.identify()
    assert (identity.inputs, identity.outputs, identity.model) == (INPUTS, len(GESTURES), model.id)


def test_codes_equal_tflite_micro_row_for_row(device: Device, model: DeployedModel, target: str) -> None:
    """Random rows, the extremes and every code on one input: each `q` line is about 3 kB,
    so each query is a dozen of the client's chunks and many times the stored line."""
    rng = np.random.default_rng(11)
    rows = rng.integers(-128, 128, size=(48 if target == "qemu" else 300, INPUTS)).astype(np.int8)
    extremes = np.array([np.full(INPUTS, -128), np.full(INPUTS, 127), np.zeros(INPUTS)], dtype=np.int8)
    rows = np.vstack([rows, extremes])
    assert len(" ".join(map(str, rows[0].tolist()))) > 10 * WRITE_CHUNK
    got = np.array(device.predict_codes_many(rows.tolist()), dtype=np.int8)
    want, name = oracle.int8_outputs(model.tflite, rows)
    assert name in ("tflm", "reference")  # tflite_micro's runtime where its wheel exists
    assert np.array_equal(got, np.asarray(want, dtype=np.int8).reshape(got.shape))
    one = device.predict_codes(rows[-1].tolist())  # one at a time, too
    assert one == np.asarray(want).reshape(got.shape)[-1].tolist()


def test_value_queries_answer_as_their_codes(device: Device, model: DeployedModel) -> None:
    """A hold-out window typed as values (several kB): the device quantizes each of the 714
    fields as it arrives; the answer is the oracle's on the host-quantized codes."""
    for x in model.holdout_x[:5]:
        codes = model.quantize(x.astype(np.float32)).reshape(1, -1)
        want = np.asarray(oracle.int8_outputs(model.tflite, codes)[0]).ravel()
        answer = device.predict([float(v) for v in x])
        assert answer.text == model.description.answer_text(want, clipped=not bool(model.inside(x)[0]))


def test_wrong_counts_and_bad_fields_in_a_wide_query(device: Device) -> None:
    """Every field is counted, past the model's inputs; the first bad field is the answer;
    one error line each, at the line's end, and the device stays in step."""
    row = " ".join(str(c % 256 - 128) for c in range(INPUTS))
    cases = [
        ("q " + row + " 5", "ERR 4 expected 714 codes, got 715"),
        ("q " + row + " 5" * 1000, "ERR 4 expected 714 codes, got 1714"),
        ("q " + row.rsplit(" ", 1)[0], "ERR 4 expected 714 codes, got 713"),
        ("q " + row.replace(" 5 ", " 500 ", 1), f"ERR 5 bad code at field {row.split().index('5') + 1}"),
        (row + " x", "ERR 3 bad number at field 715"),
        ("1 " * 2000, "ERR 4 expected 714 values, got 2000"),
        ("id " + row, "ERR 2 line too long (max 128 bytes)"),
    ]
    for request, expected in cases:
        with pytest.raises(ProtocolError) as raised:
            device.request(request)
        assert raised.value.line == expected, request[:40]
    assert len(device.predict_codes([0] * INPUTS)) == len(GESTURES)


def test_backspace_edits_the_field_being_typed(device: Device) -> None:
    """A terminal's Backspace in a long line: the last byte of the field being typed goes;
    after a separator nothing does (the fields before are parsed already)."""
    codes = [(7 * i) % 256 - 128 for i in range(INPUTS)]
    want = device.predict_codes(codes)
    head = "q " + " ".join(map(str, codes[:-1]))
    assert device.request(head + " 99\x7f\x7f" + str(codes[-1]))[2:].split() == list(map(str, want))
    assert device.request(head + " \b\b\b" + str(codes[-1]))[2:].split() == list(map(str, want))


def test_predict_cli_takes_a_714_value_query(wide: Path, model: DeployedModel, target: str) -> None:
    """`python -m pipeline.predict --emulate TARGET --model-dir DIR` with one 714-value query,
    and with its codes (--codes): the device's answers, as it prints them."""
    x = model.holdout_x[0]
    codes = model.quantize(x.astype(np.float32)).ravel()
    want = np.asarray(oracle.int8_outputs(model.tflite, codes.reshape(1, -1))[0]).ravel()
    values = run_tool("pipeline.predict", "--emulate", target, "--model-dir", str(wide), "--timeout", "20",
                      ",".join(repr(float(v)) for v in x))
    assert values.returncode == 0, values.stderr
    assert values.stdout.splitlines() == [model.description.answer_text(want, clipped=not bool(model.inside(x)[0]))]
    asked = run_tool("pipeline.predict", "--emulate", target, "--model-dir", str(wide), "--timeout", "20",
                     "--codes", ",".join(map(str, codes.tolist())))
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.splitlines() == [" ".join(map(str, want.tolist()))]
    short = run_tool("pipeline.predict", "--emulate", target, "--model-dir", str(wide), "1,2,3")
    assert short.returncode == 2
    assert short.stderr.strip().endswith("the model takes 714 input(s) per query, as x1,x2,...,x714")


def test_verify_cli_passes_on_a_714_input_model(wide: Path, model: DeployedModel, target: str) -> None:
    """`python -m pipeline.verify --emulate TARGET --model-dir DIR`: model.json's sweep (random
    codes over 714 inputs), the float queries and the hold-out rows, all bit for bit."""
    done = run_tool("pipeline.verify", "--emulate", target, "--model-dir", str(wide), "--timeout", "20")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]
    rows = len(model.sweep[0])
    assert re.search(rf"^int8 mismatches vs (tflm|reference): 0 of {rows} rows$", done.stdout, re.M), done.stdout
    assert any(line.startswith("PASS     hold-out int8: 0 of ") for line in lines)
    float_checks = [line for line in lines if line.startswith(("PASS     float x=", "FAIL     float x="))]
    assert float_checks and all(f"({INPUTS} values)" in line and len(line) < 400 for line in float_checks)
