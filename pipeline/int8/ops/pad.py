"""PAD (and PADV2): the input inside a border of constant codes, the output's zero point unless a
constant value is given, in the input's quantization (TFLM's int8 Pad)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("PAD", "PADV2")
AOT = True
KERNEL = "pad"


@dataclass(frozen=True)
class Pad:
    shape: tuple[int, ...]                 # the input's full shape
    widths: tuple[tuple[int, int], ...]    # before and after each axis
    value: int


def macs(model: TfliteModel, op: Operator) -> int:
    return 0


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Pad:
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    if not shapes.same_quantization(inp, out):
        raise shapes.refuse(op, "input and output quantized differently: PAD does not rescale")
    widths = shapes.constant(model, op, op.inputs[1], "paddings").astype(np.int64).reshape(-1, 2)
    if len(widths) != len(inp.shape) or np.any(widths < 0) or widths[0].any():
        raise shapes.refuse(op, f"paddings {widths.tolist()} for shape {inp.shape}")
    value = int(out.zero_points[0])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.ravel(shapes.constant(model, op, op.inputs[2], "constant value"))[0])
    padded = tuple(int(d + a + b) for d, (a, b) in zip(inp.shape, widths))
    if padded != tuple(out.shape):
        raise shapes.refuse(op, f"shape {inp.shape} padded by {widths.tolist()} is {padded}, not {out.shape}")
    return Pad(tuple(inp.shape), tuple((int(a), int(b)) for a, b in widths), value)


def apply(layer: Pad, x: np.ndarray) -> np.ndarray:
    full = np.asarray(x, dtype=np.int8).reshape(len(x), *layer.shape)
    out = np.pad(full, ((0, 0), *layer.widths), constant_values=layer.value)
    return out.reshape(len(x), -1)


def c_table(layer: Pad, name: str, inputs: list[Tensor], output: Tensor) -> str:
    out_shape = tuple(d + a + b for d, (a, b) in zip(layer.shape, layer.widths))
    steps = c.strides(out_shape)
    fields = {"rank": len(layer.shape), "in_shape": c.padded(list(layer.shape), 1), "out_step": c.padded(steps),
              "start": sum(a * s for (a, _), s in zip(layer.widths, steps)), "out_count": int(np.prod(out_shape)),
              "value": layer.value}
    return c.struct(KERNEL, name, fields, f"PAD {layer.shape} by {[list(w) for w in layer.widths]} with {layer.value}")
