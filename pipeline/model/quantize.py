"""Full-integer int8 conversion, calibrated over a declared input range."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import tensorflow as tf
import keras

from pipeline.int8 import reference
from pipeline.capture import fd_output
from pipeline.int8.tflite_model import TfliteModel
from pipeline.errors import PipelineError

CALIBRATION_SAMPLES = 256


class QuantizationError(PipelineError, ValueError):
    """The int8 model cannot be used as asked."""


def calibration_inputs(lo: float, hi: float, inputs: int, samples: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """Points spanning [lo, hi] in every input: the range the int8 input tensor will cover."""
    if inputs == 1:
        return np.linspace(lo, hi, samples, dtype=np.float32).reshape(-1, 1)
    rng = np.random.default_rng(0)
    corners = np.array(np.meshgrid(*[[lo, hi]] * min(inputs, 8))).reshape(min(inputs, 8), -1).T
    corners = np.pad(corners, ((0, 0), (0, inputs - corners.shape[1])), constant_values=(lo + hi) / 2)
    return np.vstack([corners, rng.uniform(lo, hi, size=(samples, inputs))]).astype(np.float32)


def convert(model: keras.Model, input_range: tuple[float, float], per_channel: bool = False) -> bytes:
    """int8 weights, activations, input and output; Dense per-tensor unless asked (the Nano's TFLM needs it)."""
    lo, hi = input_range
    return full_int8(model, calibration_inputs(lo, hi, int(model.inputs[0].shape[-1])), (-1,), per_channel)


def full_int8(model: keras.Model, samples: np.ndarray, row_shape: tuple[int, ...], per_channel: bool) -> bytes:
    """TFLite's converter set for int8 weights, activations, input and output, calibrated on samples
    (one row of row_shape each), quietly: its log lines are not the build's."""
    def representative():
        for row in np.asarray(samples, dtype=np.float32):
            yield [row.reshape(1, *row_shape)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), fd_output(2):
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


def per_channel_weights(model: TfliteModel) -> list[str]:
    """FULLY_CONNECTED weight tensors quantized per output channel, named for the error message."""
    found = []
    for op in model.operators:
        if op.op == "FULLY_CONNECTED":
            weights = model.tensors[op.inputs[1]]
            if weights.per_channel:
                found.append(f"'{weights.name}' (op {op.index}, {weights.scales.size} scales)")
    return found


def require_per_tensor(model: TfliteModel) -> None:
    """The TFLM trees packaged for the Nano read only scale[0] in FULLY_CONNECTED: silently wrong otherwise."""
    found = per_channel_weights(model)
    if found:
        raise QuantizationError(
            f"FULLY_CONNECTED weights quantized per channel: {', '.join(found)}; the Nano's TFLM library "
            "reads only the first scale and would answer wrong without an error. Build without "
            "--per-channel for the TFLM engine, or use --engine aot")


def require_board_agreement(model: TfliteModel, codes: np.ndarray) -> None:
    """The board's TFLM library multiplies per-tensor FULLY_CONNECTED scales in float, the
    tflite-micro runtime (the oracle) in double: for a few models an output rounds one step
    apart, so the board could not be proven against the oracle. Refused for the TFLM engine."""
    where = reference.board_divergence(model, codes)
    if where:
        raise QuantizationError(
            "FULLY_CONNECTED: the board's TFLM library (Chirale 2.0.0) multiplies this model's input and weight "
            "scales in float, the tflite-micro runtime in double, and the two answer differently on "
            f"{where}; the board could not be proven bit-exact. Train again with another --seed, or use "
            "--engine aot (it computes as the runtime does)")


def require_int8_io(model: TfliteModel) -> None:
    for role, index in (("input", model.inputs[0]), ("output", model.outputs[0])):
        tensor = model.tensors[index]
        if tensor.dtype != "INT8" or tensor.scales.size != 1:
            raise QuantizationError(f"the converter gave a {tensor.dtype} {role} tensor '{tensor.name}', not per-tensor INT8")
