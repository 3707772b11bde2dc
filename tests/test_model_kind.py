"""A given .tflite that is not full-int8 is refused naming what it is (uint8, 16x8, int8 behind a
float or uint8 interface, dynamic-range, float16, float), with the converter settings that make the
kind the device runs: one exact line, exit status 2, nothing written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tflite

import tflite_writer as w
from pipeline import build
from pipeline.int8 import tflite_model
from pipeline.model import load

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

DEVICE = "the device runs full-int8 models (int8 input, activations and output) only"


def _refusal(capsys, tmp_path: Path, model: bytes, name: str) -> str:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(model)
    out = tmp_path / "out"
    status = build.main(["-q", "--no-footprint", "--tflite", str(path), "--out", str(out / "model"),
                         "--report-dir", str(out / "report")])
    err = capsys.readouterr().err
    assert status == 2 and not out.exists(), err
    return err


def _expected(tmp_path: Path, model: bytes, name: str, role: str, kind: str, how: str) -> str:
    read = tflite_model.read(model)
    tensor = read.input if role == "input" else read.output
    return (f"error: --tflite {tmp_path / f'{name}.tflite'}: its {role} tensor '{tensor.name}' is {tensor.dtype}, "
            f"so it is {kind}; {DEVICE}: {how}\n")


def _converted(kind: str, width: int = 3, units: int = 4) -> bytes:
    """A small Keras model of fixed weights, converted as `kind` says (what people bring)."""
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(2)])
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=v.shape).astype(np.float32) for v in model.get_weights()])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif kind != "dynamic-range":
        converter.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, width)).astype(np.float32)] for _ in range(32))
        converter.target_spec.supported_ops = (
            [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8] if kind.startswith("16x8")
            else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])
        io = {"16x8": tf.int16, "uint8 io": tf.uint8}.get(kind)
        if io is not None:
            converter.inference_input_type = converter.inference_output_type = io
    return bytes(converter.convert())


CONVERTED = [
    ("float io", "an int8 model with float input and output (int8 inside, converted at its ends)", load.INT8_IO_HOW),
    ("uint8 io", "an int8 model with uint8 input and output (int8 inside, converted at its ends)", load.INT8_IO_HOW),
    ("16x8", "a 16x8 model (int16 activations, int8 weights)", load.INT16_HOW),
    ("16x8 float io", "a 16x8 model (int16 activations, int8 weights)", load.INT16_HOW),
    ("dynamic-range", "a dynamic-range model (int8 weights, float activations)", load.FULL_INT8_HOW),
    ("float16", "a float16 model (float16 weights, float activations)", load.FULL_INT8_HOW),
]


@pytest.mark.parametrize("kind,named,how", CONVERTED, ids=[c[0] for c in CONVERTED])
def test_a_converted_model_is_called_what_it_is(tmp_path, capsys, kind, named, how):
    model = _converted(kind, *((32, 64) if kind == "dynamic-range" else ()))  # small weights stay float otherwise
    name = kind.replace(" ", "-")
    assert _refusal(capsys, tmp_path, model, name) == _expected(tmp_path, model, name, "input", named, how)


def _quantize(x: int, y: int) -> w.Op:
    return w.Op(tflite.BuiltinOperator.QUANTIZE, (x,), (y,))


def _dequantize(x: int, y: int) -> w.Op:
    return w.Op(tflite.BuiltinOperator.DEQUANTIZE, (x,), (y,))


def _dense_tensors(dtype: str, zero_point: int, first: int = 0) -> list[w.Tensor]:
    """input, weights, bias, output of a 4 -> 2 FULLY_CONNECTED in `dtype` (INT8 or UINT8)."""
    weights = np.arange(8).reshape(2, 4) + (zero_point if dtype == "UINT8" else 0)
    return [w.tensor(f"x{first}", (1, 4), 0.05, zero_point, dtype=dtype),
            w.tensor("weights", (2, 4), 1 / 64, zero_point, weights, dtype),
            w.tensor("bias", (2,), 0.05 / 64, 0, np.array([3, -4]), "INT32"),
            w.tensor("y", (1, 2), 0.2, zero_point, dtype=dtype)]


def test_a_uint8_model_is_called_one(tmp_path, capsys):
    """TensorFlow 1's quantization: uint8 activations throughout (TF2's converter no longer makes it)."""
    model = w.write(_dense_tensors("UINT8", 128), [w.fully_connected(0, 1, 2, 3)], [0], [3])
    assert _refusal(capsys, tmp_path, model, "uint8") == _expected(
        tmp_path, model, "uint8", "input", "a uint8 model (uint8 activations: TensorFlow 1's quantization)",
        load.FULL_INT8_HOW)


def test_an_int8_model_with_one_float_end_names_that_end(tmp_path, capsys):
    tensors = [w.tensor("features", (1, 4), None, 0, dtype="FLOAT32"), *_dense_tensors("INT8", -3, 1)]
    float_in = w.write(tensors, [_quantize(0, 1), w.fully_connected(1, 2, 3, 4)], [0], [4])
    assert _refusal(capsys, tmp_path, float_in, "float-in") == _expected(
        tmp_path, float_in, "float-in", "input", "an int8 model with float input (int8 inside, converted at its ends)",
        load.INT8_IO_HOW)
    tensors = [*_dense_tensors("INT8", -3), w.tensor("scores", (1, 2), None, 0, dtype="FLOAT32")]
    float_out = w.write(tensors, [w.fully_connected(0, 1, 2, 3), _dequantize(3, 4)], [0], [4])
    assert _refusal(capsys, tmp_path, float_out, "float-out") == _expected(
        tmp_path, float_out, "float-out", "output", "an int8 model with float output (int8 inside, converted at its "
        "ends)", load.INT8_IO_HOW)


def test_the_settings_named_make_a_model_the_build_takes(tmp_path, capsys):
    """INT8_IO_HOW's and INT16_HOW's settings, applied, give the full-int8 model the device runs."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.full((1, 3), v, np.float32)] for v in np.linspace(-1, 1, 16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    made = load.read_tflite(_write(tmp_path / "int8.tflite", bytes(converter.convert())))
    assert (made.model.input.dtype, made.model.output.dtype) == ("INT8", "INT8")
    assert "QUANTIZE" not in made.model.ops and "DEQUANTIZE" not in made.model.ops


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
