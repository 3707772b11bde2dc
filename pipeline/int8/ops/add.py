"""ADD: two int8 tensors, each rescaled to a common scale in 20 extra bits, summed and rescaled to the
output, as TFLM's reference Add computes it (QuantizeMultiplierSmallerThanOneExp of each scale over
twice the larger input scale, in double); shapes broadcast as TFLite broadcasts them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("ADD",)
AOT = True
KERNEL = "add"
LEFT_SHIFT = 20
"""int8 ADD shifts each offset input left by 20 bits before rescaling (TFLM's left_shift)."""


@dataclass(frozen=True)
class Operands:
    """Two operands of an elementwise op: each an activation (its index among the op's activations)
    or a constant, with its full shape; the output's."""
    sources: tuple[int | np.ndarray, int | np.ndarray]
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    out_shape: tuple[int, ...]

    def constants(self, name: str) -> tuple[str, list[str]]:
        """The operands' constant tables (C) and each operand's pointer: `in0`, `in1` for activations
        (the emitter's names for the op's inputs), the table's name for a constant."""
        tables, pointers = "", []
        for k, source in enumerate(self.sources):
            if isinstance(source, int):
                pointers.append(f"in{source}")
            else:
                tables += c.array("int8_t", f"{name}_c{k}", np.asarray(source).astype(np.int8))
                pointers.append(f"{name}_c{k}")
        return tables, pointers

    def values(self, activations: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Both operands as int64 [B, *shape], ranks made equal by leading ones, to broadcast."""
        rank = max(len(self.out_shape), *(len(s) for s in self.shapes))
        batch = len(activations[0])
        out = []
        for source, shape in zip(self.sources, self.shapes):
            full = (1,) * (rank - len(shape)) + tuple(shape)
            value = activations[source] if isinstance(source, int) else source
            out.append(np.asarray(value, dtype=np.int64).reshape(batch if isinstance(source, int) else 1, *full))
        return out[0], out[1]


def operands(model: TfliteModel, op: Operator) -> Operands:
    activations = shapes.activations(model, op)
    sources = []
    for index in op.inputs[:2]:
        if index in activations:
            sources.append(activations.index(index))
        else:
            sources.append(shapes.constant(model, op, index, "operand").astype(np.int64))
    if not any(isinstance(s, int) for s in sources):
        raise shapes.refuse(op, "both operands are constants")
    out = model.tensors[op.outputs[0]].shape
    ins = tuple(tuple(model.tensors[i].shape) for i in op.inputs[:2])
    try:
        broadcast = np.broadcast_shapes(*ins)
    except ValueError:
        raise shapes.refuse(op, f"shapes {ins[0]} and {ins[1]} do not broadcast") from None
    if tuple(broadcast) != tuple(out) and int(np.prod(broadcast)) != int(np.prod(out)):
        raise shapes.refuse(op, f"shapes {ins[0]} and {ins[1]} broadcast to {tuple(broadcast)}, not {tuple(out)}")
    return Operands(tuple(sources), ins, tuple(out))


@dataclass(frozen=True)
class Add:
    operands: Operands
    offsets: tuple[int, int]           # -input zero points
    multipliers: tuple[int, int]
    shifts: tuple[int, int]            # <= 0
    output_multiplier: int
    output_shift: int
    output_offset: int
    act_min: int
    act_max: int


def macs(model: TfliteModel, op: Operator) -> int:
    return shapes.output_values(model, op)


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Add:
    a, b = (shapes.int8(model, op, i) for i in op.inputs[:2])
    out = shapes.int8(model, op, op.outputs[0])
    shapes.fused_activation(op)
    scale_a, scale_b = float(np.float32(a.scales[0])), float(np.float32(b.scales[0]))
    twice_max = 2 * max(scale_a, scale_b)
    reals = (scale_a / twice_max, scale_b / twice_max, twice_max / ((1 << LEFT_SHIFT) * float(np.float32(out.scales[0]))))
    pairs = [fixedpoint.quantize_multiplier(r) for r in reals]
    if any(not 0 < r < 1 for r in reals) or any(shift > 0 for _, shift in pairs):
        raise shapes.refuse(op, f"scales {scale_a:g}, {scale_b:g} -> {float(out.scales[0]):g} need a multiplier of 1 "
                                "or more, which TFLM's int8 ADD does not take")
    low, high = fixedpoint.activation_range(op.activation, float(out.scales[0]), int(out.zero_points[0]))
    return Add(operands(model, op), (-int(a.zero_points[0]), -int(b.zero_points[0])),
               (pairs[0][0], pairs[1][0]), (pairs[0][1], pairs[1][1]), pairs[2][0], pairs[2][1],
               int(out.zero_points[0]), low, high)


def apply(layer: Add, *activations: np.ndarray) -> np.ndarray:
    a, b = layer.operands.values(activations)
    scaled = [fixedpoint.multiply_by_quantized_multiplier((x + offset) << LEFT_SHIFT, multiplier, shift)
              for x, offset, multiplier, shift in zip((a, b), layer.offsets, layer.multipliers, layer.shifts)]
    total = fixedpoint.wrap32(scaled[0] + scaled[1])
    out = fixedpoint.multiply_by_quantized_multiplier(total, layer.output_multiplier, layer.output_shift)
    out = np.clip(fixedpoint.wrap32(out + layer.output_offset), layer.act_min, layer.act_max).astype(np.int8)
    return out.reshape(len(out), -1)


def c_table(layer: Add, name: str, inputs: list[Tensor], output: Tensor) -> str:
    fields = {"shape": c.broadcast(layer.operands.out_shape, *layer.operands.shapes),
              "offset_a": layer.offsets[0], "offset_b": layer.offsets[1], "multiplier_a": layer.multipliers[0],
              "multiplier_b": layer.multipliers[1], "shift_a": layer.shifts[0], "shift_b": layer.shifts[1],
              "output_multiplier": layer.output_multiplier, "output_shift": layer.output_shift,
              "output_offset": layer.output_offset, "act_min": layer.act_min, "act_max": layer.act_max}
    tables, _ = layer.operands.constants(name)
    return tables + c.struct(KERNEL, name, fields, f"ADD of {layer.operands.shapes[0]} and {layer.operands.shapes[1]}")


def c_arguments(layer: Add, name: str) -> list[str]:
    """The kernel's operand pointers (a constant operand is its table)."""
    return layer.operands.constants(name)[1]
