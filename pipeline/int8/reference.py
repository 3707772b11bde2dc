"""The int8 model computed exactly as TFLM's reference kernels do, in numpy.

This is the specification the emitted C engine implements and the oracle where the
tflite-micro wheel is missing. Everything is read from the flatbuffer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8.tflite_model import Operator, TfliteModel
from pipeline.errors import PipelineError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SUPPORTED_OPS = ("FULLY_CONNECTED",)
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


class UnsupportedModelError(PipelineError, ValueError):
    """The model holds something the integer reference (and so the AOT engine) does not compute."""


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's QuantizeMultiplier: real = q * 2**shift with q a Q31 fixed-point in [0.5, 1)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = _round_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _round_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    product = a * np.int64(b)
    nudge = np.where(product >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = product + nudge
    result = np.sign(total) * (np.abs(total) // np.int64(1 << 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, np.int64(INT32_MAX), result)


def rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    x = np.asarray(x, dtype=np.int64) * np.int64(1 << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM's CalculateActivationRangeQuantized for an int8 output."""
    def q(value: float) -> int:
        return zero_point + _round_away(float(np.float32(value) / np.float32(scale)))

    low, high = -128, 127
    if activation == "RELU":
        low = max(low, q(0.0))
    elif activation == "RELU6":
        low, high = max(low, q(0.0)), min(high, q(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, q(-1.0)), min(high, q(1.0))
    return low, high


@dataclass(frozen=True)
class FullyConnected:
    """One FULLY_CONNECTED layer reduced to integers: what the C engine needs, nothing else."""
    weights: np.ndarray          # int8 [out, in]
    bias: np.ndarray             # int32 [out]
    input_offset: int            # -input zero point
    output_offset: int           # output zero point
    multipliers: tuple[int, ...]  # per output channel (repeated when per-tensor)
    shifts: tuple[int, ...]
    act_min: int
    act_max: int
    per_channel: bool


def lower_fully_connected(model: TfliteModel, op: Operator, board: bool = False) -> FullyConnected:
    """board: the multipliers as the board's TFLM library (Chirale 2.0.0) computes them, which
    multiplies per-tensor scales in float before dividing in double
    (GetQuantizedConvolutionMultipler); the tflite-micro runtime, the oracle, multiplies them in
    double, as both do for per-channel scales. The two can round an output one step apart."""
    tensors = model.tensors
    inp, weights = tensors[op.inputs[0]], tensors[op.inputs[1]]
    bias = tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    out = tensors[op.outputs[0]]
    for t in (inp, weights, out):
        if t.dtype != "INT8":
            raise UnsupportedModelError(f"op {op.index} FULLY_CONNECTED: tensor '{t.name}' is {t.dtype}, not INT8")
    if weights.data is None:
        raise UnsupportedModelError(f"op {op.index} FULLY_CONNECTED: weights '{weights.name}' are not constant")
    if np.any(weights.zero_points != 0):
        raise UnsupportedModelError(f"op {op.index} FULLY_CONNECTED: weights '{weights.name}' have nonzero zero points")
    if op.activation not in SUPPORTED_ACTIVATIONS:
        raise UnsupportedModelError(f"op {op.index} FULLY_CONNECTED: fused activation {op.activation} is not supported")
    units = weights.shape[0]
    input_scale, output_scale = np.float32(inp.scales[0]), np.float32(out.scales[0])
    if board and not weights.per_channel:
        reals = [float(np.float32(input_scale * weights.scales[0])) / float(output_scale)] * units
    else:
        reals = [float(input_scale) * float(s) / float(output_scale)
                 for s in np.broadcast_to(weights.scales, (units,))]
    pairs = [quantize_multiplier(r) for r in reals]
    bias_values = (np.zeros(units, dtype=np.int32) if bias is None or bias.data is None
                   else np.asarray(bias.data, dtype=np.int32).reshape(units))
    low, high = activation_range(op.activation, float(output_scale), int(out.zero_points[0]))
    return FullyConnected(np.asarray(weights.data, dtype=np.int8).reshape(units, -1), bias_values,
                          -int(inp.zero_points[0]), int(out.zero_points[0]), tuple(p[0] for p in pairs),
                          tuple(p[1] for p in pairs), low, high, weights.per_channel)


def fully_connected(layer: FullyConnected, x: np.ndarray) -> np.ndarray:
    """int8 [batch, in] -> int8 [batch, out]."""
    acc = (np.asarray(x, dtype=np.int64) + layer.input_offset) @ layer.weights.astype(np.int64).T
    acc = acc + layer.bias.astype(np.int64)
    out = np.empty_like(acc)
    for c in range(acc.shape[1]):
        out[:, c] = multiply_by_quantized_multiplier(acc[:, c], layer.multipliers[c], layer.shifts[c])
    out = out + layer.output_offset
    return np.clip(out, layer.act_min, layer.act_max).astype(np.int8)


def lower(model: TfliteModel, board: bool = False) -> list[FullyConnected]:
    """The model as a chain of integer layers; refuses what the reference cannot compute."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(f"expected one input and one output tensor, found {len(model.inputs)} and {len(model.outputs)}")
    layers = []
    current = model.inputs[0]
    for op in model.operators:
        if op.op not in SUPPORTED_OPS:
            raise UnsupportedModelError(
                f"op {op.index} is {op.op}; the integer reference and the AOT engine compute only "
                f"{', '.join(SUPPORTED_OPS)} (use the TFLM engine for this model)")
        if op.inputs[0] != current:
            raise UnsupportedModelError(f"op {op.index} {op.op} does not follow the previous op: only chains are supported")
        layers.append(lower_fully_connected(model, op, board))
        current = op.outputs[0]
    if current != model.outputs[0]:
        raise UnsupportedModelError("the chain of ops does not end at the model's output")
    return layers


def run(model: TfliteModel, codes: np.ndarray, board: bool = False) -> np.ndarray:
    """int8 input codes [batch, inputs] -> int8 output codes [batch, outputs]; board: as the
    board's TFLM library computes them (see lower_fully_connected)."""
    x = np.asarray(codes, dtype=np.int8).reshape(len(codes), -1)
    for layer in lower(model, board):
        x = fully_connected(layer, x)
    return x


def board_divergence(model: TfliteModel, codes: np.ndarray) -> str | None:
    """Where the board's TFLM library and the tflite-micro runtime answer differently on codes
    (a per-tensor multiplier rounded the other way), described for an error; None when they agree."""
    runtime, board = run(model, codes), run(model, codes, board=True)
    differ = np.flatnonzero(np.any(runtime != board, axis=1))
    if differ.size == 0:
        return None
    first = int(differ[0])
    return (f"{differ.size} of {len(codes)} inputs (first: codes {np.asarray(codes)[first].tolist()} -> runtime "
            f"{runtime[first].tolist()}, board {board[first].tolist()})")
