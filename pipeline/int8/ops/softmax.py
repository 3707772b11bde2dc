"""SOFTMAX over the last dimension, int8 logits to int8 probabilities (scale 1/256, zero point -128),
as TFLM's reference kernel computes it: gemmlowp's fixed-point exp of each logit's difference from
the largest, their sum in Q12.19, and its reciprocal."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("SOFTMAX",)
AOT = True
KERNEL = "softmax"
IN_PLACE = True
"""Each output reads its own logit, the maximum and the sum: it may overwrite its input."""
SOFTMAX_DIFF_INTEGER_BITS = 5
"""SOFTMAX rescales x - max(x) to Q5.26 before its exp."""
SOFTMAX_ACCUMULATION_BITS = 12
"""SOFTMAX sums its exps in Q12.19."""
SOFTMAX_MAX_CLASSES = 511
"""From 512 equal logits the sum of exps reaches 2**28 and TFLM's int8 softmax stops (its output
shift would exceed 31)."""


def macs(model: TfliteModel, op: Operator) -> int:
    return 0


@dataclass(frozen=True)
class Softmax:
    """A SOFTMAX op over the last dimension: int8 logits to int8 probabilities (scale 1/256, zero point -128)."""
    units: int
    beta: float
    input_multiplier: int
    input_left_shift: int
    diff_min: int

    def exps(self, diff: np.ndarray) -> np.ndarray:
        """exp(beta * scale * diff) in Q0.31 for diff = x - max(x) <= 0, and 0 where diff < diff_min
        (the kernel leaves those out of the sum and answers -128, which is what 0 gives)."""
        diff = np.asarray(diff, dtype=np.int64)
        inside = diff >= self.diff_min
        rescaled = fixedpoint.saturating_rounding_doubling_high_mul(np.where(inside, diff, 0) << self.input_left_shift,
                                                         self.input_multiplier)
        return np.where(inside, fixedpoint.exp_on_negative_values(rescaled, SOFTMAX_DIFF_INTEGER_BITS), 0)

    @property
    def exp_table(self) -> np.ndarray:
        """int32: exps(-d) for d = max(x) - x from 0, up to its last nonzero value (what the AOT engine
        looks up; a d past the end is 0)."""
        table = self.exps(-np.arange(256))
        return table[:int(np.flatnonzero(table)[-1]) + 1].astype(np.int32)



def lower(model: TfliteModel, op: Operator, board: bool = False) -> Softmax:
    """TFLM's prepare for int8 SOFTMAX: beta * input scale * 2**26 (capped at 2**31 - 1) as a multiplier
    above one, and diff_min, the most negative x - max(x) whose rescaled value fits Q5.26."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    if int(out.zero_points[0]) != -128 or np.float32(out.scales[0]) != np.float32(1 / 256):
        raise shapes.refuse(op, f"output scale {float(out.scales[0]):g} zero point "
                                    f"{int(out.zero_points[0])}, TFLM requires 1/256 and -128")
    units = int(inp.shape[-1])
    if units > SOFTMAX_MAX_CLASSES:
        raise shapes.refuse(op, f"{units} classes, at most {SOFTMAX_MAX_CLASSES} "
                                    "are computed (TFLM's int8 softmax overflows its shift beyond)")
    real = min(float(np.float32(op.beta)) * float(inp.scales[0]) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    multiplier, shift = fixedpoint.quantize_multiplier(real)
    if real <= 1.0 or shift < 0:
        raise shapes.refuse(op, f"beta * input scale {real / 2**26:g} is too small")
    diff_min = -math.floor(((1 << SOFTMAX_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS))
                           / (1 << shift))
    return Softmax(units, float(np.float32(op.beta)), multiplier, shift, diff_min)


def apply(layer: Softmax, x: np.ndarray) -> np.ndarray:
    """int8 [batch, ..., units] -> the same shape, over the last dimension: exps over a 12-integer-bit sum, times the sum's
    reciprocal (normalised to [1, 2) by its leading zeros), rounded to 8 bits."""
    shape = np.shape(x)
    x = np.asarray(x, dtype=np.int64).reshape(-1, layer.units)
    exps = layer.exps(x - x.max(axis=1, keepdims=True))
    total = fixedpoint.rounding_divide_by_pot(exps, SOFTMAX_ACCUMULATION_BITS).sum(axis=1, keepdims=True)
    headroom = fixedpoint.count_leading_zeros(total)
    scale = fixedpoint.one_over_one_plus_x(((total << headroom) & 0xFFFFFFFF) - (1 << 31))
    exponent = SOFTMAX_ACCUMULATION_BITS - headroom + 31 - 8
    out = fixedpoint.rounding_divide_by_pot(fixedpoint.saturating_rounding_doubling_high_mul(scale, exps), exponent) - 128
    return np.clip(out, -128, 127).astype(np.int8).reshape(shape)


def c_table(layer: Softmax, name: str, inputs: list[Tensor], output: Tensor) -> str:
    table = layer.exp_table
    fields = {"rows": shapes.values(output.shape) // layer.units, "units": layer.units, "exps": f"{name}_e",
              "exp_count": table.size}
    return (c.array("int32_t", f"{name}_e", table)
            + c.struct(KERNEL, name, fields, f"SOFTMAX: exp of the logit difference d = max - x at [d] in Q0.31, 0 "
                       f"past the end (beta {layer.beta:g}, multiplier {layer.input_multiplier}, left shift "
                       f"{layer.input_left_shift}, diff_min {layer.diff_min})"))
