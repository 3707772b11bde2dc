"""A model this build did not train, end to end: a Keras model the test saves, an int8 .tflite the
test converts with TensorFlow's own converter, and a 714-input IMU classifier, each built, emitted,
run on the native and QEMU emulations and verified against TFLM bit for bit; then the refusals,
each with its message. Every model is made here: no model file of another project."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import toolchains
from pipeline import build
from pipeline.device import deployed
from pipeline.device.serial_client import Device
from pipeline.device.verify import report, verify
from pipeline.emulation import qemu
from pipeline.emulation.emulate import emulated_device
from pipeline.int8 import oracle, tflite_model

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

IMU_LABELS = ("circle", "flex", "idle", "punch", "wave")


def _regression(folder: Path) -> tuple[Path, Path, np.ndarray]:
    """3 inputs on [1, 3] (no 0 in the data's range) -> Dense(8, relu) -> Dense(1), fitted briefly."""
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.uniform(1.0, 3.0, size=(300, 3)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2] / 4).reshape(-1, 1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu", name="features"),
                              keras.layers.Dense(1, name="value")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=30, verbose=0)
    model.save(folder / "regression.keras")
    np.savetxt(folder / "inputs.csv", x, delimiter=",", fmt="%.5f")
    return folder / "regression.keras", folder / "inputs.csv", x


def _int8_tflite(model: keras.Model, x: np.ndarray) -> bytes:
    """A full-int8 model as a user makes one with TensorFlow's converter: its int8 settings, on a batch
    of any size (not the build's batch of one)."""
    from pipeline.model import quantize
    return quantize.full_int8(model, x[:200], (-1,), per_channel=False)


def _imu(folder: Path) -> tuple[Path, Path]:
    """Windows of 119 samples x 6 axes (the Nano's gesture window) -> Flatten -> 50 relu -> 15 relu -> 5 softmax."""
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    t = np.linspace(0, 2 * np.pi, 119)
    classes = rng.integers(0, 5, size=250)
    windows = np.stack([np.stack([np.sin(t * (k + 1) + axis) for axis in range(6)], axis=1) for k in classes])
    windows = (windows + rng.normal(0, 0.3, size=windows.shape)).astype(np.float32)
    model = keras.Sequential([keras.Input((119, 6)), keras.layers.Flatten(name="window"),
                              keras.layers.Dense(50, activation="relu"), keras.layers.Dense(15, activation="relu"),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(windows, classes, epochs=15, verbose=0)
    model.save(folder / "imu.keras")
    with open(folder / "imu.csv", "w") as f:
        for row, k in zip(windows.reshape(len(windows), -1), classes):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{IMU_LABELS[k]}\n")
    return folder / "imu.keras", folder / "imu.csv"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("given")
    keras_file, inputs, x = _regression(folder)
    model = keras.saving.load_model(keras_file)
    (folder / "regression_int8.tflite").write_bytes(_int8_tflite(model, x))
    (folder / "regression_float.tflite").write_bytes(bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert()))
    imu, imu_csv = _imu(folder)
    line = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    line.layers[-1].set_weights([np.array([[2.0]], np.float32), np.array([-1.0], np.float32)])
    line.save(folder / "line.keras")
    return {"folder": folder, "keras": keras_file, "inputs": inputs, "int8": folder / "regression_int8.tflite",
            "float": folder / "regression_float.tflite", "imu": imu, "imu_csv": imu_csv}


BUILDS = {
    "keras": lambda m: ["--keras", m["keras"], "--data", m["inputs"]],
    "tflite": lambda m: ["--tflite", m["int8"]],
    "tflite-with-float": lambda m: ["--tflite", m["int8"], "--float-model", m["float"], "--data", m["inputs"]],
    "imu-714": lambda m: ["--keras", m["imu"], "--data", m["imu_csv"], "--labels", ",".join(IMU_LABELS)],
}


class Builds(dict):
    """Each model built for the AOT engine (the emulations' engine without a TFLM tree), once, when first asked for."""

    def __init__(self, made: dict[str, Path]) -> None:
        super().__init__()
        self.made = made

    def __missing__(self, name: str) -> Path:
        folder = self.made["folder"] / name
        status = build.main(["-q", "--no-footprint", "--engine", "aot", *map(str, BUILDS[name](self.made)),
                             "--out", str(folder / "model"), "--report-dir", str(folder / "report")])
        assert status == 0, name
        self[name] = folder
        return folder


@pytest.fixture(scope="module")
def built(made: dict[str, Path]) -> Builds:
    return Builds(made)


def test_a_tflite_is_deployed_byte_for_byte(made, built):
    given = made["int8"].read_bytes()
    for name in ("tflite", "tflite-with-float"):
        model = built[name] / "model"
        assert (model / "model.tflite").read_bytes() == given
        assert json.loads((model / "model.json").read_text())["sha256"] == hashlib.sha256(given).hexdigest()
        assert f"SHA-256 {hashlib.sha256(given).hexdigest()}" in (model / "model_data.cpp").read_text()


def test_the_float_figures_are_computed_only_with_a_float_model(built):
    alone = json.loads((built["tflite"] / "report" / "report.json").read_text())["check"]
    paired = json.loads((built["tflite-with-float"] / "report" / "report.json").read_text())["check"]
    assert alone["errors"] is None and alone["float_model"] is None
    assert "not computed" in (built["tflite"] / "report" / "report.md").read_text()
    assert paired["float_model"] == "float TFLite model regression_float.tflite"
    assert 0 < paired["errors"]["max_lsb"] <= paired["tolerance_lsb"]
    meta = json.loads((built["tflite"] / "model" / "model.json").read_text())
    assert meta["sweep"]["float"] is None and meta["tolerance"]["max_lsb"] is None


def test_the_check_sweeps_the_input_space_bit_exact(built):
    """TFLM, the integer reference and (so) the AOT engine's arithmetic agree on every swept row."""
    for name in BUILDS:
        check = json.loads((built[name] / "report" / "report.json").read_text())["check"]
        assert check["reference"] == "agrees", name
        assert check["mismatches"] == 0
        assert check["sweep_count"] >= 512


def test_a_given_keras_model_takes_the_trained_models_stages(built, made, tmp_path):
    """One build path: a given Keras model's int8 model is the one conversion's (quantize.convert,
    calibrated on the input box and --data's rows, as a trained model is on its range and training
    rows), and its check and report come from the same check and writer as a trained model's."""
    from pipeline.model import load, quantize
    given = load.load_keras(made["keras"])
    rows = np.loadtxt(made["inputs"], delimiter=",", dtype=np.float64).astype(np.float32)
    box = (float(rows.min()), float(rows.max()))
    again = tflite_model.read(quantize.convert(given.model, box, False, rows, given.input_shape))
    deployed_model = tflite_model.read((built["keras"] / "model" / "model.tflite").read_bytes())

    def arithmetic(m: tflite_model.TfliteModel) -> list:
        """Everything but names (Keras numbers its models per session): ops, shapes, scales, constants."""
        return [[(o.op, o.inputs, o.outputs, o.activation) for o in m.operators],
                [(t.shape, t.dtype, np.asarray(t.scales).tolist(), np.asarray(t.zero_points).tolist(),
                  None if t.data is None else np.asarray(t.data).tolist()) for t in m.tensors]]
    assert arithmetic(deployed_model) == arithmetic(again)
    assert build.main(["-q", "--no-footprint", "--out", str(tmp_path / "model"),
                       "--report-dir", str(tmp_path / "report")]) == 0
    trained = json.loads((tmp_path / "report" / "report.json").read_text())
    keras_report = json.loads((built["keras"] / "report" / "report.json").read_text())
    assert set(keras_report["check"]) == set(trained["check"])
    assert set(keras_report) - {"source", "data"} <= set(trained) | {"footprint"}


def test_a_keras_model_keeps_its_input_shape_row_major(built, made):
    """The IMU model's (119, 6) input is fed as 714 codes, row-major: TFLM on the reshaped row equals
    the Keras model on the window."""
    meta = deployed.load(built["imu-714"] / "model")
    assert meta.inputs == 714 and meta.outputs == 5 and meta.description.labels == IMU_LABELS
    parsed = tflite_model.read(meta.tflite)
    assert parsed.input.shape == (1, 119, 6) and parsed.ops[0] == "RESHAPE"
    windows = np.loadtxt(made["imu_csv"], delimiter=",", usecols=range(714), max_rows=40, dtype=np.float32)
    expected = np.asarray(keras.saving.load_model(made["imu"])(windows.reshape(-1, 119, 6)))
    flat = meta.dequantize(oracle.tflm_outputs(meta.tflite, meta.quantize(windows)))
    crossed = meta.dequantize(oracle.tflm_outputs(
        meta.tflite, meta.quantize(windows.reshape(-1, 119, 6).transpose(0, 2, 1).reshape(-1, 714))))
    steps = np.abs(flat - expected).max() / meta.output_scale
    assert steps <= meta.description.tolerance_lsb
    assert np.abs(crossed - expected).max() / meta.output_scale > steps  # the other order answers otherwise
    assert np.mean(np.argmax(flat, axis=1) == np.argmax(expected, axis=1)) >= 0.9


TARGETS = {"native": "native", "qemu": "qemu"}


@pytest.fixture(scope="module", params=[(m, t) for m in BUILDS for t in TARGETS], ids=lambda p: f"{p[0]}-{p[1]}")
def device(request: pytest.FixtureRequest, built: dict[str, Path]) -> Iterator[tuple[str, Device]]:
    name, target = request.param
    problem = toolchains.native_problem() if target == "native" else (qemu.toolchain_problem() or qemu.qemu_problem())
    if problem:
        pytest.skip(problem)
    with emulated_device(target, model_dir=built[name] / "model", timeout=60.0) as port, Device(port) as opened:
        yield name, opened


def test_verify_proves_the_device(device, built):
    name, dev = device
    model = deployed.load(built[name] / "model")
    result = verify(dev, model)
    assert result.ok, report(result, "emulation")
    assert result.mismatches == 0 and result.rows == len(model.sweep_codes)
    if name == "tflite":
        assert result.device_vs_float is None
        assert any("not judged" in w for w in result.warnings)
    else:
        assert result.device_vs_float["max_lsb"] <= model.description.tolerance_lsb


def test_the_device_equals_tflm_on_random_codes(device, built):
    name, dev = device
    model = deployed.load(built[name] / "model")
    codes = np.random.default_rng(11).integers(-128, 128, size=(24, model.inputs)).astype(np.int8)
    got = np.array(dev.predict_codes_many(codes.tolist()), dtype=np.int8).reshape(len(codes), -1)
    assert np.array_equal(got, oracle.tflm_outputs(model.tflite, codes))


def test_every_readme_example_of_a_given_model_builds(made):
    """README's --keras and --tflite lines, on the files of the same role made here."""
    from test_build import readme_build_commands
    files = {"gesture.keras": made["imu"], "windows.csv": made["imu_csv"], "line.keras": made["folder"] / "line.keras",
             "model_int8.tflite": made["int8"], "model.keras": made["keras"], "inputs.csv": made["inputs"]}
    examples = readme_build_commands(given_models=True)
    assert len(examples) >= 4
    for k, args in enumerate(examples):
        out = made["folder"] / f"readme-{k}"
        args = [str(files.get(a, a)) for a in args]
        assert build.main(["-q", "--no-footprint", *args, "--out", str(out / "model"),
                           "--report-dir", str(out / "report")]) == 0, args


def test_a_one_input_model_takes_a_csv_of_one_column_or_of_inputs_and_targets(made):
    xs = np.linspace(-1, 4, 6)
    only = made["folder"] / "xs.csv"
    only.write_text("x\n" + "".join(f"{x:g}\n" for x in xs))
    pairs = made["folder"] / "xy.csv"
    pairs.write_text("".join(f"{x:g},{2 * x - 1:g}\n" for x in xs))
    for data in (only, pairs):
        out = made["folder"] / data.stem
        assert build.main(["-q", "--no-footprint", "--keras", str(made["folder"] / "line.keras"), "--data", str(data),
                           "--out", str(out / "model"), "--report-dir", str(out / "report")]) == 0
        assert deployed.load(out / "model").input_range == (-1.0, 4.0)


# ---- refusals ---------------------------------------------------------------------------------------------


def _refused(capsys, args: list[str], status: int = 2) -> str:
    assert build.main(["--no-footprint", *map(str, args), "--out", "/nonexistent/model"]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_float_tflite_is_refused_saying_how_to_make_an_int8_one(made, capsys):
    line = _refused(capsys, ["--tflite", made["float"]])
    assert "is FLOAT32, so it is a float model" in line
    assert "TFLITE_BUILTINS_INT8" in line and "inference_input_type" in line and "--keras" in line


def test_a_dynamic_range_tflite_is_refused(made, capsys):
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64), keras.layers.Dense(1)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = made["folder"] / "dynamic.tflite"
    path.write_bytes(bytes(converter.convert()))
    assert any(t.dtype == "INT8" for t in tflite_model.read(path.read_bytes()).tensors)
    assert "a dynamic-range model (int8 weights, float activations)" in _refused(capsys, ["--tflite", path])


def test_an_op_the_board_lacks_is_refused_naming_op_and_layer(made, capsys):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="gelu", name="smooth"),
                              keras.layers.Dense(1)])
    path = made["folder"] / "gelu.keras"
    model.save(path)
    line = _refused(capsys, ["--keras", path, "--data", made["inputs"]])
    assert "layer 'smooth' (Dense) becomes GELU" in line and "the board's TFLM library (Chirale_TensorFlowLite 2.0.0)" in line
    assert _refused(capsys, ["--keras", path, "--data", made["inputs"], "--engine", "aot"]) == line


def test_a_per_channel_tflite_is_refused_for_the_tflm_engine_only(made, capsys):
    model = keras.saving.load_model(made["keras"])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.full((1, 3), v, np.float32)] for v in np.linspace(1, 3, 32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = made["folder"] / "per_channel.tflite"
    path.write_bytes(bytes(converter.convert()))  # TensorFlow's default: Dense weights per channel
    line = _refused(capsys, ["--tflite", path])
    assert "FULLY_CONNECTED weights quantized per channel" in line and "--engine aot" in line
    folder = made["folder"] / "per_channel"
    assert build.main(["-q", "--no-footprint", "--tflite", str(path), "--engine", "aot", "--out", str(folder / "model"),
                       "--report-dir", str(folder / "report")]) == 0
    assert deployed.load(folder / "model").description.per_channel


def test_a_model_of_two_inputs_is_refused(made, capsys):
    a, b = keras.Input((2,)), keras.Input((1,))
    path = made["folder"] / "two.keras"
    keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b]))).save(path)
    assert "the model has 2 inputs and 1 outputs" in _refused(capsys, ["--keras", path, "--data", made["inputs"]])


def test_a_layer_the_converter_cannot_take_is_named(made):
    from pipeline.model import load, quantize
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="mix"),
                              keras.layers.Lambda(lambda v: tf.math.cumprod(v, axis=1), name="running_product"),
                              keras.layers.Dense(1)])
    given = load.from_model(model, "--keras product.keras")
    with pytest.raises(Exception) as refused:
        quantize.convert(given.model, None, rows=np.random.default_rng(0).uniform(-1, 1, size=(16, 4)),
                         input_shape=given.input_shape)
    message = str(given.conversion_error(refused.value))
    assert "the int8 converter cannot take layer running_product (op tf.Cumprod)" in message


def test_training_arguments_and_mismatched_data_are_refused(made, capsys):
    assert "--hidden trains a model, and --keras gives one" in _refused(capsys, ["--keras", made["keras"], "--hidden", "4"])
    assert "--float-model goes with --tflite" in _refused(capsys, ["--keras", made["keras"], "--float-model", made["float"]])
    assert "--input-range does not apply to --tflite" in _refused(capsys, ["--tflite", made["int8"], "--input-range", "0", "1"])
    line = _refused(capsys, ["--keras", made["keras"], "--data", made["imu_csv"]])
    assert "the model takes 3 input(s)" in line
    assert "not a TFLite flatbuffer" in _refused(capsys, ["--tflite", made["inputs"]])
    assert "no such file" in _refused(capsys, ["--keras", made["folder"] / "absent.keras"])


def test_an_input_column_of_few_codes_is_warned_about():
    """One scale for the whole input tensor: a column 500 times narrower than its neighbour gets one code."""
    from pipeline.model.check import resolution_warnings
    from pipeline.model.data import Dataset
    x = np.column_stack([np.linspace(0, 255, 100), np.linspace(0, 0.5, 100), np.linspace(0, 9, 100)])
    rows = Dataset(x, np.zeros((100, 0)), "t.csv", ("wide", "narrow", "nine"), (0.0, 255.0))
    warning, = resolution_warnings(rows, 1.0)
    assert "1 input column(s)" in warning and "narrow (0.5)" in warning and "wide" not in warning
    assert resolution_warnings(rows, 0.05) == []


def test_a_model_the_reference_cannot_compute_is_compared_with_nothing_and_says_so(made, capsys):
    """A model with LEAKY_RELU (the board's TFLM has it, the reference not): the check line says `not
    compared`, never `0 mismatches`, and report.json records null."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6), keras.layers.LeakyReLU(negative_slope=0.2),
                              keras.layers.Dense(2)])
    path = made["folder"] / "leaky.keras"
    model.save(path)
    out = made["folder"] / "leaky"
    assert build.main(["--no-footprint", "--keras", str(path), "--data", str(made["inputs"]), "--tolerance-lsb", "1e6",
                       "--out", str(out / "model"), "--report-dir", str(out / "report")]) == 0
    check_line, = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check: ")]
    assert "; not compared: the integer reference does not compute this model (op " in check_line
    assert "LEAKY_RELU" in check_line and "mismatch" not in check_line
    check = json.loads((out / "report" / "report.json").read_text())["check"]
    assert check["mismatches"] is None and check["reference"].startswith("does not compute this model")
    assert "not compared" in (out / "report" / "report.md").read_text()


def test_a_conv1d_model_is_compared_with_the_reference(made, capsys):
    """Keras' Conv1D (EXPAND_DIMS or RESHAPE around CONV_2D): TFLM and the reference agree on every
    swept row, and the build says so; the AOT engine is refused by name until it has the kernels."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((20, 3)), keras.layers.Conv1D(4, 3, activation="relu"),
                              keras.layers.MaxPooling1D(2), keras.layers.Flatten(), keras.layers.Dense(2)])
    path = made["folder"] / "conv1d.keras"
    model.save(path)
    rows = made["folder"] / "windows60.csv"
    np.savetxt(rows, np.random.default_rng(2).normal(0, 1, size=(100, 60)), delimiter=",", fmt="%.4f")
    out = made["folder"] / "conv1d"
    assert build.main(["--no-footprint", "--keras", str(path), "--data", str(rows), "--tolerance-lsb", "1e6",
                       "--out", str(out / "model"), "--report-dir", str(out / "report")]) == 0
    check_line, = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check: ")]
    assert "vs the integer reference (the AOT engine's arithmetic) over 612 input rows: 0 mismatches" in check_line
    check = json.loads((out / "report" / "report.json").read_text())["check"]
    assert check["mismatches"] == 0 and "CONV_2D" in json.loads((out / "report" / "report.json").read_text())["model"]["ops"]
