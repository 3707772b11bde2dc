"""MEAN over some axes (H and W: the global average pooling Keras converts to MEAN), as the
tflite-micro runtime computes it: the int32 sum of the codes, less the input zero point per value,
times input scale / output scale folded with 1 / count into one multiplier (QuantizedMeanOrSum).

The board's library (Chirale 2.0.0, an older TFLM) computes MEAN otherwise, and the reference computes
that too (board=True): with the input's quantization on the output, the sum divided by the count,
truncated toward zero; else in float, (sum / count) * (input scale / output scale) - input zero point
* that ratio, rounded half away from zero."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("MEAN",)
AOT = True
KERNEL = "mean"


@dataclass(frozen=True)
class Mean:
    axes: tuple[int, ...]          # axes of the input's full shape summed over
    shape: tuple[int, ...]         # the input's full shape
    count: int                     # values summed per output
    input_zero_point: int
    multiplier: int                # the runtime's, 1 / count folded in
    shift: int
    output_zero_point: int
    board: str | None = None       # None: the runtime's arithmetic; "truncate" or "float": the board's
    board_scale: float = 1.0       # the board's float32 input scale / output scale


def macs(model: TfliteModel, op: Operator) -> int:
    """One per value summed: every input value."""
    return shapes.input_values(model, op)


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Mean:
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    shape = tuple(inp.shape)
    axes = sorted({int(a) % len(shape) for a in np.ravel(shapes.constant(model, op, op.inputs[1], "axis"))})
    if 0 in axes:
        raise shapes.refuse(op, "a mean over the batch dimension")
    count = int(np.prod([shape[a] for a in axes]))
    multiplier, shift = fixedpoint.quantize_multiplier(float(np.float32(inp.scales[0])) / float(np.float32(out.scales[0])))
    adjust = min(count.bit_length() - 1, 32, 31 + shift)
    folded = (multiplier << adjust) // count
    mode = None
    if board:
        mode = "truncate" if shapes.same_quantization(inp, out) else "float"
    return Mean(tuple(axes), shape, count, int(inp.zero_points[0]), folded, shift - adjust, int(out.zero_points[0]),
                mode, float(np.float32(inp.scales[0]) / np.float32(out.scales[0])))


def apply(layer: Mean, x: np.ndarray) -> np.ndarray:
    """int8 [B, ...] -> int8 [B, remaining values]."""
    full = np.asarray(x, dtype=np.int64).reshape(len(x), *layer.shape)
    total = full.sum(axis=tuple(a + 1 for a in layer.axes)).reshape(len(x), -1)  # the kernel's int32 sums
    if layer.board == "truncate":
        out = np.sign(total) * (np.abs(total) // layer.count)
    elif layer.board == "float":
        scale = np.float32(layer.board_scale)
        bias = np.float32(np.float32(-layer.input_zero_point) * scale)
        mean = total.astype(np.float32) / np.float32(layer.count)
        value = (mean * scale).astype(np.float32) + bias
        rounded = np.sign(value) * np.floor(np.abs(value) + np.float32(0.5))
        out = np.clip(rounded + layer.output_zero_point, -128, 127)
    else:
        shifted = fixedpoint.wrap32(total - layer.input_zero_point * layer.count)
        out = fixedpoint.multiply_by_quantized_multiplier(shifted, layer.multiplier, layer.shift)
        out = np.clip(out + layer.output_zero_point, -128, 127)
    return out.astype(np.int8)


def c_table(layer: Mean, name: str, inputs: list[Tensor], output: Tensor) -> str:
    """The runtime's arithmetic (the AOT engine computes as the oracle does, not as the board's library)."""
    steps = c.strides(layer.shape)
    kept = [d for d in range(len(layer.shape)) if d not in layer.axes]
    fields = {"kept_rank": len(kept), "reduced_rank": len(layer.axes),
              "kept_shape": c.padded([layer.shape[d] for d in kept], 1), "kept_step": c.padded([steps[d] for d in kept]),
              "reduced_shape": c.padded([layer.shape[d] for d in layer.axes], 1),
              "reduced_step": c.padded([steps[d] for d in layer.axes]), "count": layer.count,
              "input_zero_point": layer.input_zero_point, "multiplier": layer.multiplier, "shift": layer.shift,
              "output_zero_point": layer.output_zero_point}
    return c.struct(KERNEL, name, fields, f"MEAN of {layer.shape} over axes {list(layer.axes)}")
