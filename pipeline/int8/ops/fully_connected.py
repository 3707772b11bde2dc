"""FULLY_CONNECTED: every input times every weight row, per-tensor or per-channel weights, as TFLM's
reference kernel (the runtime) and the board's library compute it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAMES = ("FULLY_CONNECTED",)
AOT = True
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


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


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the weight rows' length (weights [units, depth]): a batch of one, the weights' count."""
    return math.prod(model.tensors[op.outputs[0]].shape) * math.prod(model.tensors[op.inputs[1]].shape[1:])


def lower(model: TfliteModel, op: Operator, board: bool = False) -> FullyConnected:
    """board: the multipliers as the board's TFLM library (Chirale 2.0.0) computes them, which
    multiplies per-tensor scales in float before dividing in double
    (GetQuantizedConvolutionMultipler); the tflite-micro runtime, the oracle, multiplies them in
    double, as both do for per-channel scales. The two can round an output one step apart."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    weights = shapes.int8(model, op, op.inputs[1], per_tensor=False)
    values = shapes.constant(model, op, op.inputs[1], "weights")
    if np.any(weights.zero_points != 0):
        raise shapes.refuse(op, f"weights '{weights.name}' have nonzero zero points")
    if op.activation not in ACTIVATIONS:
        raise shapes.refuse(op, f"fused activation {op.activation} is not supported")
    units = weights.shape[0]
    bias = model.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    input_scale, output_scale = np.float32(inp.scales[0]), np.float32(out.scales[0])
    if board and not weights.per_channel:
        reals = [float(np.float32(input_scale * weights.scales[0])) / float(output_scale)] * units
    else:
        reals = [float(input_scale) * float(s) / float(output_scale)
                 for s in np.broadcast_to(weights.scales, (units,))]
    multipliers, shifts = fixedpoint.quantize_multipliers(np.array(reals))
    bias_values = (np.zeros(units, dtype=np.int32) if bias is None or bias.data is None
                   else np.asarray(bias.data, dtype=np.int32).reshape(units))
    low, high = fixedpoint.activation_range(op.activation, float(output_scale), int(out.zero_points[0]))
    return FullyConnected(np.asarray(values, dtype=np.int8).reshape(units, -1), bias_values,
                          -int(inp.zero_points[0]), int(out.zero_points[0]), tuple(int(m) for m in multipliers),
                          tuple(int(s) for s in shifts), low, high, weights.per_channel)


def apply(layer: FullyConnected, x: np.ndarray) -> np.ndarray:
    """int8 [batch, ...] -> int8 [batch, ..., out]: each row of `in` values through the layer."""
    depth = layer.weights.shape[1]
    rows = np.asarray(x, dtype=np.int64).reshape(-1, depth)
    acc = (rows + layer.input_offset).astype(np.float64) @ layer.weights.astype(np.float64).T  # exact below 2**53
    acc = fixedpoint.wrap32(np.rint(acc).astype(np.int64) + layer.bias.astype(np.int64))  # the int32 accumulator
    out = fixedpoint.requantize(acc, np.array(layer.multipliers), np.array(layer.shifts), layer.output_offset,
                                layer.act_min, layer.act_max)
    return out.reshape(len(x), -1)
