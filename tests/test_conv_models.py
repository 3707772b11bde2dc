"""Models shaped like the field's, made here with Keras (seeded weights, not trained) and deployed on the
AOT engine: a DS-CNN keyword spotter on a 49x10 spectrogram, a MobileNet-style stack of
depthwise-separable blocks, a ResNet block with ADD, a Conv1D gesture net on a 119x6 IMU window and a
640-128-8-128-640 autoencoder. Each is converted with the project's own settings (per-channel
convolutions), built with --engine aot, and verified on the native and QEMU emulations with 0 rows
differing from the tflite-micro runtime; the build's check compares the runtime and the integer
reference over its whole sweep too. No model file of another project."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import toolchains
from pipeline import build
from pipeline.device import deployed
from pipeline.device.serial_client import Device
from pipeline.device.verify import report, verify
from pipeline.emulation import qemu
from pipeline.emulation.emulate import emulated_device
from pipeline.int8 import ops, tflite_model

keras = pytest.importorskip("keras")
layers = keras.layers


def ds_cnn() -> "keras.Model":
    """MLPerf Tiny's keyword spotter, narrowed to 16 channels: a 10x4 convolution, stride 2, then
    depthwise-separable blocks, average pooling over what is left, 12 classes."""
    x = keras.Input((49, 10, 1))
    y = layers.Conv2D(16, (10, 4), strides=2, padding="same", activation="relu")(x)
    for _ in range(2):
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)
        y = layers.Conv2D(16, 1, activation="relu")(y)
    y = layers.AveragePooling2D((25, 5))(y)
    return keras.Model(x, layers.Dense(12, activation="softmax")(layers.Flatten()(y)))


def mobilenet() -> "keras.Model":
    """A MobileNetV1-style stack on a 24x24 RGB image (small, for the emulated serial line): 3x3 stride-2 stem, depthwise-separable blocks with
    ReLU6 (two of them strided), global average pooling (MEAN), 2 classes."""
    x = keras.Input((24, 24, 3))
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    for channels, stride in ((16, 1), (24, 2), (32, 2)):
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(y)
        y = layers.Conv2D(channels, 1, activation="relu6")(y)
    y = layers.GlobalAveragePooling2D()(y)
    return keras.Model(x, layers.Dense(2, activation="softmax")(y))


def resnet_block() -> "keras.Model":
    """ResNet-8's first stage on a 24x24 RGB image: a stem, two 3x3 convolutions and the ADD of the
    skip, max pooling, 10 classes."""
    x = keras.Input((24, 24, 3))
    stem = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(16, 3, padding="same", activation="relu")(stem)
    y = layers.Conv2D(16, 3, padding="same")(y)
    y = layers.Activation("relu")(layers.Add()([y, stem]))
    y = layers.MaxPooling2D(4)(y)
    return keras.Model(x, layers.Dense(10, activation="softmax")(layers.Flatten()(y)))


def conv1d_gesture() -> "keras.Model":
    """A 119-sample x 6-axis IMU window: Conv1D, max pooling, Conv1D, global average pooling, 5 gestures."""
    x = keras.Input((119, 6))
    y = layers.Conv1D(16, 5, activation="relu")(x)
    y = layers.MaxPooling1D(2)(y)
    y = layers.Conv1D(16, 3, activation="relu")(y)
    y = layers.GlobalAveragePooling1D()(y)
    return keras.Model(x, layers.Dense(5, activation="softmax")(y))


def autoencoder() -> "keras.Model":
    """MLPerf Tiny's anomaly detector's shape: 640 -> 128 -> 8 -> 128 -> 640."""
    x = keras.Input((640,))
    y = layers.Dense(128, activation="relu")(x)
    y = layers.Dense(8, activation="relu")(y)
    y = layers.Dense(128, activation="relu")(y)
    return keras.Model(x, layers.Dense(640)(y))


MODELS = {"ds-cnn": ds_cnn, "mobilenet": mobilenet, "resnet-block": resnet_block, "conv1d-gesture": conv1d_gesture,
          "autoencoder": autoencoder}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model saved, 120 seeded rows of its inputs as its data, built for the AOT engine."""
    folder = tmp_path_factory.mktemp("conv")
    out = {}
    for k, (name, make) in enumerate(MODELS.items()):
        keras.utils.set_random_seed(k)
        model = make()
        model.save(folder / f"{name}.keras")
        width = int(np.prod(model.inputs[0].shape[1:]))
        rows = np.random.default_rng(k).normal(0, 1, size=(120, width))
        np.savetxt(folder / f"{name}.csv", rows, delimiter=",", fmt="%.3f")
        status = build.main(["-q", "--no-footprint", "--engine", "aot", "--keras", str(folder / f"{name}.keras"),
                             "--data", str(folder / f"{name}.csv"), "--tolerance-lsb", "1e6",
                             "--out", str(folder / name / "model"), "--report-dir", str(folder / name / "report")])
        assert status == 0, name
        out[name] = folder / name
    return out


def test_the_models_have_the_fields_ops(built):
    ops_of = {name: set(json.loads((folder / "report" / "report.json").read_text())["model"]["ops"])
              for name, folder in built.items()}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SOFTMAX"} <= ops_of["ds-cnn"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN"} <= ops_of["mobilenet"]
    assert {"CONV_2D", "ADD", "MAX_POOL_2D"} <= ops_of["resnet-block"]
    assert "CONV_2D" in ops_of["conv1d-gesture"] and ops_of["conv1d-gesture"] & {"EXPAND_DIMS", "RESHAPE"}
    assert ops_of["autoencoder"] == {"FULLY_CONNECTED"}
    for name, folder in built.items():
        parsed = tflite_model.read((folder / "model" / "model.tflite").read_bytes())
        if name != "autoencoder":
            weights = [parsed.tensors[op.inputs[1]] for op in parsed.operators if op.op == "CONV_2D"]
            assert weights and all(w.per_channel for w in weights)  # the project's converter: per-channel
        assert ops.macs(parsed) > 0


def test_the_build_checks_the_reference_against_the_runtime_and_plans_the_arena(built):
    for name, folder in built.items():
        r = json.loads((folder / "report" / "report.json").read_text())
        assert r["check"]["mismatches"] == 0 and r["check"]["sweep_count"] >= 512, name
        plan = r["model"]["aot_plan"]
        assert 0 < plan["peak_live_bytes"] <= plan["arena_bytes"], name
        header = (folder / "model" / "model_aot.h").read_text()
        assert f"#define MODEL_AOT_ARENA_BYTES {plan['arena_bytes']} " in header


@pytest.fixture(scope="module", params=[(m, t) for m in MODELS for t in ("native", "qemu")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def device(request: pytest.FixtureRequest, built: dict[str, Path]) -> Iterator[tuple[str, Device]]:
    name, target = request.param
    problem = toolchains.native_problem() if target == "native" else (qemu.toolchain_problem() or qemu.qemu_problem())
    if problem:
        pytest.skip(problem)
    with emulated_device(target, model_dir=built[name] / "model", timeout=120.0) as port, \
            Device(port, timeout=60) as opened:
        yield name, opened


def test_verify_finds_no_row_differing(device, built):
    name, dev = device
    model = deployed.load(built[name] / "model")
    result = verify(dev, model)
    assert result.ok and result.mismatches == 0, report(result, "emulation")
    assert result.rows == len(model.sweep_rows) >= 64
    identity = dev.identify()
    plan = json.loads((built[name] / "report" / "report.json").read_text())["model"]["aot_plan"]
    assert identity.engine == "aot" and identity.arena == plan["arena_bytes"]


def test_footprint_of_a_conv_model(built):
    """The keyword spotter's cost on the Cortex-M4: flash, static RAM (the arena among it), stack and
    instructions for the AOT engine; TFLM's beside it where a tree is given."""
    from pipeline.footprint import measurement
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem() or qemu.qemu_problem())
    measured = measurement.measure(built["ds-cnn"] / "model")
    aot = measured["aot"]
    plan = json.loads((built["ds-cnn"] / "report" / "report.json").read_text())["model"]["aot_plan"]
    parsed = tflite_model.read((built["ds-cnn"] / "model" / "model.tflite").read_bytes())
    assert aot["arena_bytes"] == plan["arena_bytes"] > 0
    assert aot["ram_bytes"] >= plan["arena_bytes"]  # the arena is static RAM
    assert aot["macs"] == ops.macs(parsed) and aot["instructions_per_inference"] > aot["macs"]
    assert 0 < aot["stack_bytes"] < 2048 and aot["flash_bytes"] > 0
    assert ("skipped" in measured["tflm"]) == (not os.environ.get("TFLM_ROOT"))  # measured with a tree


def test_a_plan_the_board_cannot_hold_is_refused_for_the_aot_engine(tmp_path, capsys):
    """A 3x3 convolution to 64x64x48 (192 KB alive at once, with its input beside it) cannot fit the
    Nano 33 BLE's RAM: --engine aot is refused in one line naming the tensors alive at the peak."""
    import op_models
    (tmp_path / "big.tflite").write_bytes(op_models.wide_feature_map())
    args = ["--no-footprint", "--tflite", str(tmp_path / "big.tflite"), "--out", str(tmp_path / "m"),
            "--report-dir", str(tmp_path / "r")]
    assert build.main([*args, "--engine", "aot"]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --engine aot: the AOT engine's tensors need a 196656 B arena (196656 B alive at "
                           "once at op 0 CONV_2D: 'op 0's scratch', 'features')")  # the im2col window, planned in the arena
    assert "more than the 196608 B the Nano 33 BLE leaves a sketch" in line
    assert not (tmp_path / "m").exists()


def test_a_model_whose_input_and_output_pass_the_board_is_refused_without_an_arena(tmp_path, capsys):
    """x + x on a 128x256x3 image needs no arena, but its input and output (96 KB each) and the core's
    2 KB do not fit; a 96x96x3 one (27,648 values each way) does: the answer's length costs no RAM."""
    import tflite_writer as w
    for shape, status in (((1, 128, 256, 3), 2), ((1, 96, 96, 3), 0)):
        model = w.write([w.tensor("image", shape, 0.0078125, -1), w.tensor("doubled", shape, 0.01, 3)],
                        [w.elementwise("ADD", 0, 0, 1)], [0], [1])
        (tmp_path / "double.tflite").write_bytes(model)
        assert build.main(["-q", "--no-footprint", "--engine", "aot", "--tflite", str(tmp_path / "double.tflite"),
                           "--out", str(tmp_path / f"m{status}"), "--report-dir", str(tmp_path / "r")]) == status
    line, = capsys.readouterr().err.strip().splitlines()
    assert line == ("error: --engine aot: the AOT engine needs no arena, but the model's input (98304 B), output "
                    "(98304 B) and the protocol core (2048 B) need 198656 B, more than the 196608 B the Nano 33 BLE "
                    "leaves a sketch (256 KB less 64 KB for the mbed core, its stacks and USB serial)")
    assert not (tmp_path / "m2").exists() and (tmp_path / "m0" / "model_aot.h").is_file()


def image_exchange(tmp_path: Path, target: str, model: bytes, codes: np.ndarray) -> tuple[np.ndarray, Any, Any]:
    """Builds the model for the AOT engine, asks the target's emulation each row of codes (q) and the
    first row as values; returns the codes it answered, the value answer and the deployed model."""
    problem = toolchains.native_problem() if target == "native" else (qemu.toolchain_problem() or qemu.qemu_problem())
    if problem:
        pytest.skip(problem)
    (tmp_path / "image.tflite").write_bytes(model)
    assert build.main(["-q", "--no-footprint", "--engine", "aot", "--tflite", str(tmp_path / "image.tflite"),
                       "--out", str(tmp_path / "model"), "--report-dir", str(tmp_path / "report")]) == 0
    deployed_model = deployed.load(tmp_path / "model")
    with emulated_device(target, model_dir=tmp_path / "model", timeout=120.0) as port, \
            Device(port, timeout=120) as device:
        got = np.array(device.predict_codes_many(codes.tolist()), dtype=np.int8)
        answer = device.predict([float(v) for v in deployed_model.input_values(codes[0])])
    return got, answer, deployed_model


@pytest.mark.parametrize("target", ["native", "qemu"])
def test_an_image_of_27648_values_streams_in(tmp_path, target):
    """A 96x96x3 image (the visual wake words input): each query of 27,648 codes or values is parsed as
    it arrives, and the device answers as the runtime does."""
    import tflite_writer as w
    from pipeline.int8 import oracle, sweep
    model = w.write([w.tensor("image", (1, 96, 96, 3), 0.0078125, -1),
                     w.tensor("means", (1, 1, 1, 3), 0.0078125, -1)],
                    [w.pool_2d("AVERAGE_POOL_2D", 0, 1, (96, 96))], [0], [1])
    codes = sweep.random_rows(5, 96 * 96 * 3, 0, 2 if target == "qemu" else 8)
    codes[0, : 96 * 48 * 3] = 127  # a bright top half: the means move off the middle
    got, answer, deployed_model = image_exchange(tmp_path, target, model, codes)
    want = oracle.tflm_outputs(model, codes)
    assert np.array_equal(got, want) and len(set(want[:, 0].tolist())) > 1
    assert np.allclose(answer.values, deployed_model.dequantize(want[0]), atol=1e-4)


@pytest.mark.parametrize("target", ["native", "qemu"])
def test_an_answer_of_27648_values_streams_out(tmp_path, target):
    """An image-to-image model (each pixel added to itself, rescaled): each answer of 27,648 codes or values
    is formatted as it is sent, a piece at a time, so its length needs no buffer on the device."""
    import tflite_writer as w
    from pipeline.int8 import oracle, sweep
    model = w.write([w.tensor("image", (1, 96, 96, 3), 0.0078125, -1),
                     w.tensor("doubled", (1, 96, 96, 3), 0.01, 3)],
                    [w.elementwise("ADD", 0, 0, 1)], [0], [1])
    codes = sweep.random_rows(9, 96 * 96 * 3, 0, 2)
    got, answer, deployed_model = image_exchange(tmp_path, target, model, codes)
    want = oracle.tflm_outputs(model, codes)
    assert want.shape == (2, 27648) and np.array_equal(got, want) and len(set(want[0].tolist())) > 100
    assert np.allclose(answer.values, deployed_model.dequantize(want[0]), atol=1e-4)
