"""MUL: two int8 tensors multiplied value by value, the product of their offset codes rescaled by
input scale x input scale / output scale (in double, TFLM's mul_common), shapes broadcast as TFLite
broadcasts them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import add, c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("MUL",)
AOT = True
KERNEL = "mul"


@dataclass(frozen=True)
class Mul:
    operands: add.Operands
    offsets: tuple[int, int]
    multiplier: int
    shift: int
    output_offset: int
    act_min: int
    act_max: int


def macs(model: TfliteModel, op: Operator) -> int:
    return shapes.output_values(model, op)


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Mul:
    a, b = (shapes.int8(model, op, i) for i in op.inputs[:2])
    out = shapes.int8(model, op, op.outputs[0])
    shapes.fused_activation(op)
    real = float(np.float32(a.scales[0])) * float(np.float32(b.scales[0])) / float(np.float32(out.scales[0]))
    multiplier, shift = fixedpoint.quantize_multiplier(real)
    low, high = fixedpoint.activation_range(op.activation, float(out.scales[0]), int(out.zero_points[0]))
    return Mul(add.operands(model, op), (-int(a.zero_points[0]), -int(b.zero_points[0])), multiplier, shift,
               int(out.zero_points[0]), low, high)


def apply(layer: Mul, *activations: np.ndarray) -> np.ndarray:
    a, b = layer.operands.values(activations)
    product = (a + layer.offsets[0]) * (b + layer.offsets[1])
    out = fixedpoint.multiply_by_quantized_multiplier(product, layer.multiplier, layer.shift)
    out = np.clip(fixedpoint.wrap32(out + layer.output_offset), layer.act_min, layer.act_max).astype(np.int8)
    return out.reshape(len(out), -1)


def c_table(layer: Mul, name: str, inputs: list[Tensor], output: Tensor) -> str:
    fields = {"shape": c.broadcast(layer.operands.out_shape, *layer.operands.shapes),
              "offset_a": layer.offsets[0], "offset_b": layer.offsets[1], "multiplier": layer.multiplier,
              "shift": layer.shift, "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max}
    tables, _ = layer.operands.constants(name)
    return tables + c.struct(KERNEL, name, fields, f"MUL of {layer.operands.shapes[0]} and {layer.operands.shapes[1]}")


def c_arguments(layer: Mul, name: str) -> list[str]:
    return layer.operands.constants(name)[1]
