"""The board's own TFLM library, natively and on the Cortex-M4 under QEMU: the seed, a classifier, a
convolutional model and a model the board's arithmetic rounds apart from the runtime, each built for
the TFLM engine and verified bit for bit; its footprint beside the AOT engine's; the refusals.

The tree is TFLM_ROOT (CI points it at the pinned Chirale_TensorFLowLite 2.0.0) or the one PlatformIO
installs under .pio/libdeps/nano33ble/ after `pio run`. Nothing of TFLM is in this repository, so
without a tree these tests skip and say so. Each target's library compiles once (build/tflm/) and
every model here only links it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import tflite_writer
import toolchains
import trained
from pipeline import build
from pipeline.device import deployed
from pipeline.device.serial_client import Device
from pipeline.emulation import qemu, tflm_library
from pipeline.emulation.emulate import emulated_device
from pipeline.int8 import oracle, ops, reference, tflite_model
from pipeline.paths import BUILD_ROOT, MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent


tflm_root = toolchains.tflm_root
pytestmark = pytest.mark.skipif(
    tflm_root() is None,
    reason="no TFLM library tree: set TFLM_ROOT, or run `pio run -e nano33ble` once so PlatformIO "
           "installs it under .pio/libdeps/nano33ble/")

CLASSES = ("rest", "walk", "run", "jump")


def classifier_tflite() -> bytes:
    """3 inputs -> FULLY_CONNECTED 8 relu -> FULLY_CONNECTED 4 -> SOFTMAX, from fixed integers."""
    rng = np.random.default_rng(4)
    return tflite_writer.dense_chain(
        [(rng.integers(-127, 128, (8, 3)), rng.integers(-800, 800, 8), 0.05, -128, "RELU"),
         (rng.integers(-127, 128, (4, 8)), rng.integers(-800, 800, 4), 0.08, 3, "NONE")],
        0.03, -7, classes=True)


def conv_keras(folder: Path) -> tuple[Path, Path]:
    """A keyword-spotting-shaped network on a 10x8x1 input: Conv2D stride 2, DepthwiseConv2D, a 1x1
    Conv2D, average pooling, Dense and softmax, seeded weights (not trained), calibrated on 200 rows."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(9)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((10, 8, 1)),
        layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        layers.Conv2D(8, 1, activation="relu"),
        layers.AveragePooling2D((5, 4)),
        layers.Flatten(),
        layers.Dense(3, activation="softmax")])
    model.save(folder / "conv.keras")
    x = np.random.default_rng(9).normal(0, 1, size=(200, 80))
    np.savetxt(folder / "conv.csv", x, delimiter=",", fmt="%.4f")
    return folder / "conv.keras", folder / "conv.csv"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model's emitted folder, built for the TFLM engine by the build command; the seed is the
    committed firmware/model."""
    folder = tmp_path_factory.mktemp("tflm")
    (folder / "classifier.tflite").write_bytes(classifier_tflite())
    board, _ = trained.board_rounding_tflite()
    (folder / "board.tflite").write_bytes(board)
    conv, conv_csv = conv_keras(folder)
    builds = {"classifier": ["--tflite", folder / "classifier.tflite", "--labels", ",".join(CLASSES)],
              "board-rounding": ["--tflite", folder / "board.tflite"],
              "conv": ["--keras", conv, "--data", conv_csv, "--tolerance-lsb", "1e6"]}
    out = {"seed": MODEL_DIR}
    for name, args in builds.items():
        status = build.main(["-q", "--no-footprint", "--engine", "tflm", *map(str, args),
                             "--out", str(folder / name / "model"), "--report-dir", str(folder / name / "report")])
        assert status == 0, name
        out[name] = folder / name / "model"
    return out


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _tools(target: str) -> None:
    problem = (toolchains.native_problem() if target == "native"
               else qemu.toolchain_problem(tflm=True) or qemu.qemu_problem())
    if problem:
        pytest.skip(problem)


@pytest.mark.parametrize("target", ["native", "qemu"])
@pytest.mark.parametrize("name", ["seed", "classifier", "conv", "board-rounding"])
def test_verify_passes_on_the_board_library(models, name, target):
    """`verify --emulate TARGET` with TFLM_ROOT: the emulation runs the TFLM engine, every sweep row
    equals the runtime's answer (or, on board-rounding rows, the board library's own), 0 failed."""
    _tools(target)
    done = _run(["pipeline.verify", "--emulate", target, "--model-dir", str(models[name])],
                {"TFLM_ROOT": str(tflm_root())})
    assert done.returncode == 0, done.stdout + done.stderr
    model = deployed.load(models[name])
    assert f"engine tflm" in done.stdout.splitlines()[0]
    assert f"int8 vs tflm: 0 of {len(model.sweep_rows)} rows differ" in done.stdout
    assert done.stdout.rstrip().endswith(", 0 failed")
    assert len(model.sweep_rows) >= 64
    if name == "board-rounding":
        assert f"; {len(model.board)} of them held to the board library's own rounding" in done.stdout
    if name == "classifier":
        assert f"PASS     labels: device {list(CLASSES)}" in done.stdout


def test_the_board_rounding_model_builds_with_a_warning(tmp_path):
    model, board = trained.board_rounding_tflite()
    (tmp_path / "board.tflite").write_bytes(model)
    done = _run(["pipeline.build", "--no-footprint", "--tflite", str(tmp_path / "board.tflite"),
                 "--out", str(tmp_path / "model"), "--report-dir", str(tmp_path / "report")])
    assert done.returncode == 0, done.stderr
    warning, = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert f"on {len(board)} of 512 sweep rows" in warning and "verify expects them from the TFLM engine" in warning
    deployed_model = deployed.load(tmp_path / "model")
    codes = deployed_model.sweep_codes
    parsed = tflite_model.read(model)
    runtime = oracle.tflm_outputs(model, codes)
    for row, answer in deployed_model.board.items():
        assert np.array_equal(answer, reference.run(parsed, codes[row:row + 1], board=True)[0])
        assert not np.array_equal(answer, runtime[row])


@pytest.mark.parametrize("target", ["native", "qemu"])
def test_the_tflm_device_answers_as_its_library_rounds(models, target):
    """On the rows where the two roundings part, the board's library answers the board's codes, not
    the runtime's: the expectation model.json carries is what the device really computes."""
    _tools(target)
    model = deployed.load(models["board-rounding"])
    rows = sorted(model.board)
    codes = model.sweep_codes[rows]
    with emulated_device(target, model_dir=models["board-rounding"], tflm_root=tflm_root(), timeout=120.0) as port, \
            Device(port, timeout=30) as device:
        assert device.identify().engine == "tflm"
        got = np.array(device.predict_codes_many(codes.tolist()), dtype=np.int8)
    assert np.array_equal(got, np.stack([model.board[k] for k in rows]))
    assert np.all(np.any(got != oracle.tflm_outputs(model.tflite, codes), axis=1))


def test_footprint_measures_a_conv_model_on_both_engines(models):
    """A convolutional model: both engines measured, every op's MACs counted, the AOT engine's arena
    the plan's and TFLM's its own."""
    if qemu.toolchain_problem(tflm=True) or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem(tflm=True) or qemu.qemu_problem())
    env = {"TFLM_ROOT": str(tflm_root())}
    done = _run(["pipeline.footprint", "--model-dir", str(models["conv"]), "--json"], env)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    parsed = tflite_model.read((models["conv"] / "model.tflite").read_bytes())
    # By hand: 3x3 conv to 5x4x6 (120 values x 9), depthwise 3x3 (120 x 9), 1x1 conv to 5x4x8 (160 x 6),
    # 5x4 average pool to 8 values (8 x 20), dense 8 -> 3 (24).
    assert ops.macs_by_op(parsed) == {"CONV_2D": 1080 + 960, "DEPTHWISE_CONV_2D": 1080, "AVERAGE_POOL_2D": 160,
                                      "FULLY_CONNECTED": 24}
    for engine in ("aot", "tflm"):
        f = figures[engine]
        assert f["engine"] == engine and f["macs"] == ops.macs(parsed) > 0
        assert f["arena_bytes"] > 0 and f["flash_bytes"] > 0 and 1 <= f["bench_iterations"] <= 100_000
    assert figures["tflm"]["flash_bytes"] > 20000 and figures["tflm"]["instructions_per_inference"] > figures["tflm"]["macs"]
    assert f"#define MODEL_AOT_ARENA_BYTES {figures['aot']['arena_bytes']} " in (models["conv"] / "model_aot.h").read_text()


def test_footprint_says_why_it_skips_the_aot_engine(tmp_path):
    """A LEAKY_RELU model (the board's TFLM has the op, the AOT engine not): TFLM measured, the AOT engine
    skipped in one line; --engine aot alone is refused with that reason."""
    if qemu.toolchain_problem(tflm=True) or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem(tflm=True) or qemu.qemu_problem())
    model = tflite_writer.write([tflite_writer.tensor("input", (1, 8), 0.05, 3),
                                 tflite_writer.tensor("leaky", (1, 8), 0.04, 10)],
                                [tflite_writer.leaky_relu(0, 1, 0.2)], [0], [1])
    (tmp_path / "leaky.tflite").write_bytes(model)
    assert build.main(["-q", "--no-footprint", "--tflite", str(tmp_path / "leaky.tflite"), "--out",
                       str(tmp_path / "model"), "--report-dir", str(tmp_path / "report")]) == 0
    env = {"TFLM_ROOT": str(tflm_root())}
    table = _run(["pipeline.footprint", "--model-dir", str(tmp_path / "model")], env)
    assert table.returncode == 0, table.stderr
    skipped = [line for line in table.stdout.splitlines() if line.startswith("aot not measured: ")]
    assert len(skipped) == 1 and "the AOT engine cannot run this model: op 0 is LEAKY_RELU" in skipped[0]
    assert any(line.split()[1:2] == ["tflm"] for line in table.stdout.splitlines()[1:3])
    alone = _run(["pipeline.footprint", "--model-dir", str(tmp_path / "model"), "--engine", "aot"], env)
    assert alone.returncode == 2 and alone.stderr.startswith("error: --engine aot: the AOT engine cannot run")
    assert len(alone.stderr.strip().splitlines()) == 1


def test_the_refusals_around_the_tree(models, tmp_path):
    """No tree for --engine tflm, and a tree that is not one, each one line and exit status 2 or 1."""
    env = {"TFLM_ROOT": ""}
    done = _run(["pipeline.footprint", "--model-dir", str(models["seed"]), "--engine", "tflm"], env)
    assert done.returncode == 2 and "no TFLM library tree" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = _run(["pipeline.emulate", "native", "--tflm-root", str(tmp_path)], env, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: {tmp_path.resolve()}: not a TFLM library tree (no tensorflow/lite/micro/micro_interpreter.h in it "
        "or its src/)"]


def test_the_library_is_compiled_once_per_target_and_tree(models):
    """Every model above linked the one archive of its target: no model's build compiled the tree."""
    for target in ("native", "qemu"):
        archive = tflm_library.folder(target, tflm_root()) / tflm_library.ARCHIVE
        if target == "qemu" and not archive.is_file():
            continue  # the QEMU toolchain is missing: nothing was built for it
        assert archive.is_file(), target
        before = archive.stat().st_mtime_ns
        assert tflm_library.library(target, tflm_root()) == archive
        assert archive.stat().st_mtime_ns == before
    folders = [p.name for p in (BUILD_ROOT / "tflm").iterdir() if (p / "key.json").is_file()]
    keys = [json.loads((BUILD_ROOT / "tflm" / f / "key.json").read_text()) for f in folders]
    mine = [k["target"] for k in keys if k["tree"] == str(tflm_root().resolve())]
    assert len(mine) == len(set(mine))  # one folder per target for this tree


def _board_models() -> dict[str, bytes]:
    """One-op models of every op the reference computes beyond dense layers, written from seeded integers."""
    import op_models
    import test_op_shapes
    return {
        "conv-relu6-stride2": op_models.conv(1, 9, 8, 3, 4, kernel=(3, 3), stride=(2, 2), activation="RELU6"),
        "conv-per-tensor-valid": op_models.conv(2, 7, 5, 2, 3, padding="VALID", per_channel=False),
        "depthwise-multiplier-2": op_models.conv(3, 6, 5, 2, 4, depthwise=True),
        "average-pool-same": op_models.pool("AVERAGE_POOL_2D", 4, 7, 9, 2, (3, 3), (2, 2), "SAME"),
        "max-pool": op_models.pool("MAX_POOL_2D", 5, 6, 6, 3, (2, 2), (2, 2), "VALID"),
        "add-broadcast": op_models.elementwise("ADD", 6, (1, 4, 3, 6), second="pixel"),
        "mul": op_models.elementwise("MUL", 7, (1, 3, 4, 2)),
        "mean-rescaled": test_op_shapes.mean_model(8, (1, 5, 4, 6), (1, 2), False, False),
        "mean-same-quantization": test_op_shapes.mean_model(9, (1, 4, 4, 3), (1, 2), False, True),
    }


@pytest.mark.parametrize("target", ["native", "qemu"])
def test_the_board_library_computes_what_the_reference_says_it_does(target, tmp_path):
    """Each op on the board's own library (CMSIS-NN's convolutions, pooling, ADD and MUL on the M4; its
    older MEAN) answers exactly what the integer reference computes for the board (board=True): the
    runtime's answers, or, where the older library computes otherwise (MEAN), its own."""
    _tools(target)
    import op_models
    from pipeline.emit import sources as emit
    for name, model in _board_models().items():
        parsed = tflite_model.read(model)
        folder = tmp_path / name
        folder.mkdir()
        facts = emit.facts(parsed, name, (-1.0, 1.0), oracle.arena_bytes(model), None)
        for file, content in emit.sources(model, parsed, facts, {"codes": [], "float": None}, engine="tflm").items():
            (folder / file).write_bytes(content)
        codes = op_models.rows(model, count=100)
        with emulated_device(target, tflm_root=tflm_root(), model_dir=folder, timeout=120.0,
                             build_dir=BUILD_ROOT / f"{target}-tflm-ops") as port, Device(port, timeout=30) as device:
            answers = np.array(device.predict_codes_many(codes.tolist()), dtype=np.int8).reshape(len(codes), -1)
        board = reference.run(parsed, codes, board=True)
        differ = int(np.any(answers != board, axis=1).sum())
        assert differ == 0, f"{name}: {differ} of {len(codes)} rows differ from the reference's board answers"
        if name.startswith("mean"):  # the older library's MEAN parts from the runtime's, and the board follows it
            assert np.any(board != reference.run(parsed, codes))
