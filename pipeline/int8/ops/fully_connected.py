"""FULLY_CONNECTED: every input times every weight row, per-tensor or per-channel weights, as TFLM's
reference kernel (the runtime) and the board's library compute it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("FULLY_CONNECTED",)
AOT = True
KERNEL = "fully_connected"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_INPUTS = 1 << 20
"""The widest input the tables are emitted for: every int8 product sum of a row and the folded bias
stay exact in the kernel's int32 arithmetic well beyond (127 * 255 per input)."""


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
    shapes.fused_activation(op)
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


ROWS_A_PASS = 4
"""Output rows the M4 kernel computes in one pass over the inputs: each input word is widened once
for four rows, and eleven registers hold what the pass needs."""


def groups(inputs: int) -> int:
    """Words of a weight row: four codes a word, the last rounded up with zero weights."""
    return (inputs + 3) // 4


def weight_words(weights: np.ndarray) -> np.ndarray:
    """int8 [units, inputs] -> int32 words, the weights kept int8 (as in the flatbuffer): code 4g + k of
    a row in byte k of its word g. Rows go in fours, interleaved one word at a time (row 4q + r's word g
    at (4q * groups + 4g + r)), so one pass over the inputs feeds four accumulators from consecutive
    words; the last units % 4 rows follow, one after another."""
    units, inputs = weights.shape
    padded = np.zeros((units, 4 * groups(inputs)), dtype=np.uint32)
    padded[:, :inputs] = weights.view(np.uint8)
    codes = padded.reshape(units, -1, 4)
    words = codes[..., 0] | codes[..., 1] << 8 | codes[..., 2] << 16 | codes[..., 3] << 24
    quads = units // ROWS_A_PASS * ROWS_A_PASS
    woven = words[:quads].reshape(quads // ROWS_A_PASS, ROWS_A_PASS, words.shape[1]).transpose(0, 2, 1).reshape(-1)
    return np.concatenate([woven, words[quads:].reshape(-1)]).astype(np.uint32).view(np.int32)


def folded_bias(layer: FullyConnected) -> np.ndarray:
    """bias + input_offset * (the row's weight sum), wrapped to int32 as the kernel's int32 sum is:
    the engine then accumulates the raw input codes, the input zero point paid once, here."""
    rows = layer.weights.astype(np.int64).sum(axis=1)
    folded = layer.bias.astype(np.int64) + np.int64(layer.input_offset) * rows
    return (((folded + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


def per_channel_requantization(layer: FullyConnected) -> bool:
    """Whether the outputs' multipliers differ (weights quantized per channel with different scales):
    otherwise one multiplier and shift serve the layer, constants in the engine's code."""
    return len(set(zip(layer.multipliers, layer.shifts))) > 1


def c_table(layer: FullyConnected, name: str, inputs: list[Tensor], output: Tensor) -> str:
    """The int8 weights four to a word (weight_words), the bias with the input offset folded in, one
    multiplier and shift when every output shares them (then constants in the code)."""
    units, depth = layer.weights.shape
    if depth > MAX_INPUTS:
        raise ValueError(f"a FULLY_CONNECTED layer of {depth} inputs: the AOT tables stop at {MAX_INPUTS}")
    count = units if per_channel_requantization(layer) else 1
    tables = [c.array("int32_t", f"{name}_w", weight_words(layer.weights)),
              c.array("int32_t", f"{name}_b", folded_bias(layer)),
              c.array("int32_t", f"{name}_m", np.array(layer.multipliers[:count])),
              c.array("int8_t", f"{name}_s", np.array(layer.shifts[:count]))]
    fields = {"rows": shapes.values(inputs[0].shape) // depth, "inputs": depth, "units": units,
              "weights": f"{name}_w", "bias": f"{name}_b", "multipliers": f"{name}_m", "shifts": f"{name}_s",
              "per_channel": int(count > 1), "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max}
    return "".join(tables) + c.struct(KERNEL, name, fields, f"FULLY_CONNECTED {depth} -> {units}: int8 weights, "
                                      f"four a word ({groups(depth)} words a row, rows interleaved in fours), "
                                      f"bias with the input offset {layer.input_offset} folded in, "
                                      f"{'a multiplier and shift per output' if count > 1 else 'one multiplier and shift'}")
