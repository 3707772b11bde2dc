"""LOGISTIC and TANH: one int8 in, one int8 out, value by value, so each op is its table of 256
answers, computed as TFLM's int8 kernels compute them (gemmlowp's fixed-point logistic and tanh of
the input rescaled to Q4.27)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("LOGISTIC", "TANH")
AOT = True
KERNEL = "lookup"
IN_PLACE = True
"""Each output reads only its own input: the memory plan may give the output the input's bytes."""
LOOKUP_INPUT_INTEGER_BITS = 4
"""LOGISTIC and TANH rescale their int8 input to Q4.27 (TFLM's kInputIntegerBits)."""


def macs(model: TfliteModel, op: Operator) -> int:
    return 0


@dataclass(frozen=True)
class Lookup:
    """A LOGISTIC or TANH op reduced to its 256 answers: one int8 input, one int8 output, elementwise."""
    op: str
    units: int
    input_zero_point: int
    input_multiplier: int
    input_left_shift: int
    input_range_radius: int

    def codes(self, x: np.ndarray) -> np.ndarray:
        """The runtime's kernel on int8 codes: saturated beyond the input radius, else the
        fixed-point function of the input rescaled to Q4.27, rounded to the output's fixed scale
        (1/256 with zero point -128 for LOGISTIC, 1/128 with zero point 0 for TANH)."""
        centred = np.asarray(x, dtype=np.int64) - self.input_zero_point
        inside = np.where(np.abs(centred) < self.input_range_radius, centred, 0)
        rescaled = fixedpoint.multiply_by_quantized_multiplier(inside, self.input_multiplier, self.input_left_shift)
        if self.op == "LOGISTIC":
            value = fixedpoint.rounding_divide_by_pot(fixedpoint.fixed_logistic(rescaled, LOOKUP_INPUT_INTEGER_BITS), 23) - 128
        else:
            value = fixedpoint.rounding_divide_by_pot(fixedpoint.fixed_tanh(rescaled, LOOKUP_INPUT_INTEGER_BITS), 24)
        value = np.clip(value, -128, 127)
        value = np.where(centred <= -self.input_range_radius, -128, value)
        return np.where(centred >= self.input_range_radius, 127, value).astype(np.int8)

    @property
    def table(self) -> np.ndarray:
        """int8 [256]: the answer to input code c at index c + 128 (what the AOT engine looks up)."""
        return self.codes(np.arange(-128, 128))



def lower(model: TfliteModel, op: Operator, board: bool = False) -> Lookup:
    """TFLM's prepare for int8 LOGISTIC/TANH: the input scale times 2**27 as a Q31 multiplier from frexp
    (rounded half away from zero), and the radius beyond which the output saturates."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    if op.op == "LOGISTIC" and int(out.zero_points[0]) != -128:
        raise shapes.refuse(op, f"output zero point {int(out.zero_points[0])}, "
                                    "TFLM requires -128")
    fraction, shift = math.frexp(float(inp.scales[0]) * (1 << (31 - LOOKUP_INPUT_INTEGER_BITS)))
    multiplier = fixedpoint.round_away(fraction * (1 << 31))
    if not 0 <= shift <= 30 or multiplier >= 1 << 31:
        raise shapes.refuse(op, f"input scale {float(inp.scales[0]):g} is outside "
                                    "what the int8 kernel rescales")
    radius = math.floor(((1 << LOOKUP_INPUT_INTEGER_BITS) - 1) * (1 << (31 - LOOKUP_INPUT_INTEGER_BITS))
                        / (1 << shift))
    return Lookup(op.op, shapes.values(out.shape), int(inp.zero_points[0]), multiplier, shift, radius)


def apply(layer: Lookup, x: np.ndarray) -> np.ndarray:
    return layer.codes(x)


def c_table(layer: Lookup, name: str, inputs: list[Tensor], output: Tensor) -> str:
    return (c.array("int8_t", f"{name}_t", layer.table)
            + c.struct(KERNEL, name, {"count": shapes.values(output.shape), "table": f"{name}_t"},
                       f"{layer.op}: the output code for input code c at [c + 128] (input zero point "
                       f"{layer.input_zero_point}, multiplier {layer.input_multiplier}, left shift "
                       f"{layer.input_left_shift}, radius {layer.input_range_radius})"))
