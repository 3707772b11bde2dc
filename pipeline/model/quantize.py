"""Full-integer int8 conversion, calibrated over a declared input range and the data rows."""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Iterator

import numpy as np
import tensorflow as tf
import keras

from pipeline.int8 import reference
from pipeline.model import data as data_stage
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


CALIBRATION_DATA_ROWS = 2000
"""Data rows the converter calibrates on: every row of a set up to this size, else an evenly spread
sample (each row costs the converter about a millisecond)."""


def calibration_rows(model: keras.Model, rows: np.ndarray, row_shape: tuple[int, ...] = (-1,)) -> np.ndarray:
    """The data rows to calibrate on: all, or a spread sample of a large set together with the rows on
    which the model answers its least and greatest value on each output, so that the int8 output's
    range covers every answer the model gives on its own data (a fit's extremes are where it saturates
    first)."""
    rows = np.asarray(rows, dtype=np.float32)
    if len(rows) <= CALIBRATION_DATA_ROWS:
        return rows
    picked = set(data_stage.sample_rows(len(rows), CALIBRATION_DATA_ROWS).tolist())
    for start in range(0, len(rows), 65536):
        chunk = rows[start:start + 65536]
        answers = np.asarray(model(chunk.reshape(len(chunk), *row_shape), training=False)).reshape(len(chunk), -1)
        picked.update((start + answers.argmin(axis=0)).tolist() + (start + answers.argmax(axis=0)).tolist())
    return rows[sorted(picked)]


def convert(model: keras.Model, input_range: tuple[float, float] | None, per_channel: bool = False,
            rows: np.ndarray | None = None, input_shape: tuple[int, ...] | None = None) -> bytes:
    """int8 weights, activations, input and output; Dense per-tensor unless asked (the Nano's TFLM needs it).
    The one conversion of every Keras model, trained or given. Calibrated on the input box of input_range
    when given (its corners and uniform samples: the int8 input covers it) and on the data rows
    (calibration_rows), so that the outputs cover what the model answers on its data.

    input_shape: one row's shape, for a given model: it is converted on a batch of one, so a Flatten is
    one RESHAPE, not the SHAPE, STRIDED_SLICE and PACK a batch of any size needs."""
    width = int(np.prod(input_shape)) if input_shape else int(model.inputs[0].shape[-1])
    samples = []
    if input_range is not None:
        samples.append(calibration_inputs(*input_range, width))
    if rows is not None and len(rows):
        samples.append(calibration_rows(model, rows, input_shape or (-1,)))
    single = model if input_shape is None else batch_of_one(model, input_shape)
    return full_int8(single, np.vstack(samples), input_shape or (-1,), per_channel)


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
    with quietly():
        return bytes(converter.convert())


def batch_of_one(model: keras.Model, input_shape: tuple[int, ...]) -> keras.Model:
    """The model on a batch fixed at one, as the device runs it: a Flatten is then one RESHAPE."""
    fixed = keras.Input(batch_shape=(1, *input_shape))
    return keras.Model(fixed, model(fixed))


def float_tflite(model: keras.Model) -> bytes:
    """The model as a float flatbuffer: no calibration, so a fraction of the int8 conversion's time, and
    its ops (tensor names carrying the Keras layer names) say before calibrating what the int8 model would
    hold. Raises what the converter raises (ConverterError) for a TensorFlow op without a TFLite builtin."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with quietly():
        return bytes(converter.convert())


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """The converter's warnings, prints and native log lines kept out of the build's output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), fd_output(2):
        warnings.simplefilter("ignore")
        yield


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


def board_expectations(model: TfliteModel, codes: np.ndarray) -> tuple[dict[int, np.ndarray], str | None]:
    """The rows of codes where the board's TFLM library answers otherwise than the tflite-micro runtime,
    with the board's answers, and a warning saying so (None when they agree everywhere).

    The board's library (Chirale 2.0.0) multiplies per-tensor FULLY_CONNECTED input and weight
    scales in float, the runtime in double, so for a few models an output rounds one step apart; its
    MEAN is an older kernel's (reference.BOARD_DIFFERENCES). The integer reference computes both, so
    those rows are known, and verify holds a TFLM device to its own library's answers there."""
    runtime, board = reference.run(model, codes), reference.run(model, codes, board=True)
    differ = np.flatnonzero(np.any(runtime != board, axis=1))
    if differ.size == 0:
        return {}, None
    gap = np.abs(runtime.astype(np.int64) - board.astype(np.int64))
    first = int(differ[0])
    output = int(np.argmax(gap[first]))
    how = "; ".join(f"{op} {text}" for op, text in reference.BOARD_DIFFERENCES.items() if op in model.ops)
    return ({int(row): board[row] for row in differ},
            f"the board's TFLM library (Chirale 2.0.0) computes otherwise than the tflite-micro runtime ({how}): "
            f"they answer {int(gap.max())} step(s) apart at most, on "
            f"{differ.size} of {len(codes)} sweep rows (first: row {first}, output {output + 1}: runtime "
            f"{int(runtime[first, output])}, board {int(board[first, output])}); model.json holds the board's answers "
            "for those rows, and verify expects them from the TFLM engine")


def require_int8_io(model: TfliteModel) -> None:
    for role, index in (("input", model.inputs[0]), ("output", model.outputs[0])):
        tensor = model.tensors[index]
        if tensor.dtype != "INT8" or tensor.scales.size != 1:
            raise QuantizationError(f"the converter gave a {tensor.dtype} {role} tensor '{tensor.name}', not per-tensor INT8")
