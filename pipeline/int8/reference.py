"""The int8 model computed exactly as TFLM's reference kernels do, in numpy.

This is the specification the emitted C engine implements and the oracle where the
tflite-micro wheel is missing. Everything is read from the flatbuffer.

LOGISTIC, TANH and SOFTMAX follow the runtime's fixed-point kernels (gemmlowp's exp,
logistic, tanh and Newton-Raphson reciprocal over Q-format int32): their results are
integers defined to the last bit, so they are reproduced operation for operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel
from pipeline.errors import PipelineError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SUPPORTED_OPS = ("FULLY_CONNECTED", "RESHAPE", "LOGISTIC", "TANH", "SOFTMAX")
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


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    product = a * b
    nudge = np.where(product >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = product + nudge
    result = np.sign(total) * (np.abs(total) // np.int64(1 << 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, np.int64(INT32_MAX), result)


def rounding_divide_by_pot(x: np.ndarray, exponent: int | np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier on int32 x. A multiplier of 1 or more (shift > 0) first
    shifts x left in int32, as the runtime does (x * (1 << shift)): a value that does not fit
    wraps around, and the kernels then requantize the wrapped value."""
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    x = _wrap32(np.asarray(x, dtype=np.int64) * np.int64(1 << left))
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
    acc = _wrap32(acc + layer.bias.astype(np.int64))  # the kernel's int32 accumulator
    out = np.empty_like(acc)
    for c in range(acc.shape[1]):
        out[:, c] = multiply_by_quantized_multiplier(acc[:, c], layer.multipliers[c], layer.shifts[c])
    out = _wrap32(out + layer.output_offset)  # an int32 addition in the kernel too
    return np.clip(out, layer.act_min, layer.act_max).astype(np.int8)


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement wrap-around, as the kernels' int32 additions behave."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent (Rescale to fewer integer bits)."""
    x = np.asarray(x, dtype=np.int64)
    limit = (1 << (31 - exponent)) - 1
    return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, x << exponent))


def rounding_half_sum(a: np.ndarray, b: int) -> np.ndarray:
    """(a + b) / 2, halves away from zero (a 64-bit sum, C's truncating division)."""
    total = np.asarray(a, dtype=np.int64) + np.int64(b)
    total = total + np.where(total >= 0, 1, -1)
    return np.sign(total) * (np.abs(total) // 2)


_EXP_QUARTER_STEPS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                      (3, 720401), (4, 242))
"""exp(-2**k) in Q0.31 for the barrel shifter of gemmlowp's exp_on_negative_values."""


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) in Q0.31 for a <= 0 in Q(integer_bits).(31 - integer_bits): a Taylor series around -1/8 on
    a's last quarter, times exp(-2**k) for each higher bit of the remainder."""
    a = np.asarray(a, dtype=np.int64)
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    srdhm = saturating_rounding_doubling_high_mul
    x = _wrap32(saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    tail = rounding_divide_by_pot(_wrap32(srdhm(_wrap32(x4_over_4 + x3), 715827883) + x2), 1)
    result = _wrap32(1895147668 + srdhm(1895147668, _wrap32(x + tail)))
    remainder = _wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_QUARTER_STEPS:
        if integer_bits > exponent:
            bit = np.int64(1) << (fractional + exponent)
            result = np.where(remainder & bit, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal(half_denominator: np.ndarray) -> np.ndarray:
    """1 / half_denominator in Q2.29 for half_denominator in [1/2, 1): three Newton-Raphson steps
    from 48/17 - 32/17 * d."""
    srdhm = saturating_rounding_doubling_high_mul
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        error = _wrap32((1 << 29) - srdhm(half_denominator, x))
        x = _wrap32(x + saturating_shift_left(srdhm(x, error), 2))
    return x


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) in Q0.31 for a in [0, 1) in Q0.31."""
    return saturating_shift_left(_newton_reciprocal(rounding_half_sum(a, INT32_MAX)), 1)


def one_minus_x_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """(1 - a) / (1 + a) in Q0.31 for a in [0, 1) in Q0.31."""
    return saturating_shift_left(_wrap32(_newton_reciprocal(rounding_half_sum(a, INT32_MAX)) - (1 << 29)), 2)


def fixed_logistic(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """logistic(a) in Q0.31, a in Q(integer_bits): 1 / (1 + exp(-|a|)), mirrored below zero."""
    a = np.asarray(a, dtype=np.int64)
    positive = one_over_one_plus_x(exp_on_negative_values(-np.abs(a), integer_bits))
    return np.where(a == 0, 1 << 30, np.where(a > 0, positive, INT32_MAX - positive))


def fixed_tanh(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """tanh(a) in Q0.31, a in Q(integer_bits): (1 - exp(-2|a|)) / (1 + exp(-2|a|)), odd."""
    a = np.asarray(a, dtype=np.int64)
    magnitude = one_minus_x_over_one_plus_x(exp_on_negative_values(-np.abs(a), integer_bits + 1))
    return np.where(a == 0, 0, np.where(a < 0, -magnitude, magnitude))


LOOKUP_INPUT_INTEGER_BITS = 4
"""LOGISTIC and TANH rescale their int8 input to Q4.27 (TFLM's kInputIntegerBits)."""
SOFTMAX_DIFF_INTEGER_BITS = 5
"""SOFTMAX rescales x - max(x) to Q5.26 before its exp."""
SOFTMAX_ACCUMULATION_BITS = 12
"""SOFTMAX sums its exps in Q12.19."""
SOFTMAX_MAX_CLASSES = 511
"""From 512 equal logits the sum of exps reaches 2**28 and TFLM's int8 softmax stops (its output
shift would exceed 31)."""


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
        rescaled = multiply_by_quantized_multiplier(inside, self.input_multiplier, self.input_left_shift)
        if self.op == "LOGISTIC":
            value = rounding_divide_by_pot(fixed_logistic(rescaled, LOOKUP_INPUT_INTEGER_BITS), 23) - 128
        else:
            value = rounding_divide_by_pot(fixed_tanh(rescaled, LOOKUP_INPUT_INTEGER_BITS), 24)
        value = np.clip(value, -128, 127)
        value = np.where(centred <= -self.input_range_radius, -128, value)
        return np.where(centred >= self.input_range_radius, 127, value).astype(np.int8)

    @property
    def table(self) -> np.ndarray:
        """int8 [256]: the answer to input code c at index c + 128 (what the AOT engine looks up)."""
        return self.codes(np.arange(-128, 128))


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
        rescaled = saturating_rounding_doubling_high_mul(np.where(inside, diff, 0) << self.input_left_shift,
                                                         self.input_multiplier)
        return np.where(inside, exp_on_negative_values(rescaled, SOFTMAX_DIFF_INTEGER_BITS), 0)

    @property
    def exp_table(self) -> np.ndarray:
        """int32: exps(-d) for d = max(x) - x from 0, up to its last nonzero value (what the AOT engine
        looks up; a d past the end is 0)."""
        table = self.exps(-np.arange(256))
        return table[:int(np.flatnonzero(table)[-1]) + 1].astype(np.int32)


def _count_leading_zeros(x: np.ndarray) -> np.ndarray:
    """Of non-negative int32 values, exactly (no float log)."""
    x = np.asarray(x, dtype=np.int64)
    return 32 - sum(((x >> k) > 0).astype(np.int64) for k in range(32))


def softmax(layer: Softmax, x: np.ndarray) -> np.ndarray:
    """int8 [batch, units] -> int8 [batch, units]: exps over a 12-integer-bit sum, times the sum's
    reciprocal (normalised to [1, 2) by its leading zeros), rounded to 8 bits."""
    x = np.asarray(x, dtype=np.int64)
    exps = layer.exps(x - x.max(axis=1, keepdims=True))
    total = rounding_divide_by_pot(exps, SOFTMAX_ACCUMULATION_BITS).sum(axis=1, keepdims=True)
    headroom = _count_leading_zeros(total)
    scale = one_over_one_plus_x(((total << headroom) & 0xFFFFFFFF) - (1 << 31))
    exponent = SOFTMAX_ACCUMULATION_BITS - headroom + 31 - 8
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scale, exps), exponent) - 128
    return np.clip(out, -128, 127).astype(np.int8)


@dataclass(frozen=True)
class Reshape:
    """A RESHAPE between tensors of one scale and zero point: the same int8 bytes in the same
    (row-major) order, so nothing to compute (what Keras' Flatten converts to)."""
    units: int


def lower_reshape(model: TfliteModel, op: Operator) -> Reshape:
    """Only a reshape that keeps the quantization is a no-op on the codes; another would requantize."""
    inp, out = _tensor_pair(model, op)
    if (np.float32(inp.scales[0]) != np.float32(out.scales[0])
            or int(inp.zero_points[0]) != int(out.zero_points[0])):
        raise UnsupportedModelError(
            f"op {op.index} RESHAPE: input scale {float(inp.scales[0]):g} zero point {int(inp.zero_points[0])}, "
            f"output scale {float(out.scales[0]):g} zero point {int(out.zero_points[0])}: only a RESHAPE that "
            "keeps the quantization is computed (use the TFLM engine for this model)")
    if _units(inp) != _units(out):
        raise UnsupportedModelError(f"op {op.index} RESHAPE: {_units(inp)} values in, {_units(out)} out")
    return Reshape(_units(out))


def _tensor_pair(model: TfliteModel, op: Operator) -> tuple[Tensor, Tensor]:
    """The op's input and output; the int8 kernels read one scale and zero point of each."""
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    for t in (inp, out):
        if t.dtype != "INT8" or t.scales.size != 1:
            raise UnsupportedModelError(f"op {op.index} {op.op}: tensor '{t.name}' is not per-tensor INT8")
    return inp, out


def _units(tensor: Tensor) -> int:
    """Values per inference (the batch dimension left out)."""
    return int(np.prod(tensor.shape[1:])) if len(tensor.shape) > 1 else int(np.prod(tensor.shape))


def lower_lookup(model: TfliteModel, op: Operator) -> Lookup:
    """TFLM's prepare for int8 LOGISTIC/TANH: the input scale times 2**27 as a Q31 multiplier from frexp
    (rounded half away from zero), and the radius beyond which the output saturates."""
    inp, out = _tensor_pair(model, op)
    if op.op == "LOGISTIC" and int(out.zero_points[0]) != -128:
        raise UnsupportedModelError(f"op {op.index} LOGISTIC: output zero point {int(out.zero_points[0])}, "
                                    "TFLM requires -128")
    fraction, shift = math.frexp(float(inp.scales[0]) * (1 << (31 - LOOKUP_INPUT_INTEGER_BITS)))
    multiplier = _round_away(fraction * (1 << 31))
    if not 0 <= shift <= 30 or multiplier >= 1 << 31:
        raise UnsupportedModelError(f"op {op.index} {op.op}: input scale {float(inp.scales[0]):g} is outside "
                                    "what the int8 kernel rescales")
    radius = math.floor(((1 << LOOKUP_INPUT_INTEGER_BITS) - 1) * (1 << (31 - LOOKUP_INPUT_INTEGER_BITS))
                        / (1 << shift))
    return Lookup(op.op, _units(out), int(inp.zero_points[0]), multiplier, shift, radius)


def lower_softmax(model: TfliteModel, op: Operator) -> Softmax:
    """TFLM's prepare for int8 SOFTMAX: beta * input scale * 2**26 (capped at 2**31 - 1) as a multiplier
    above one, and diff_min, the most negative x - max(x) whose rescaled value fits Q5.26."""
    inp, out = _tensor_pair(model, op)
    if int(out.zero_points[0]) != -128 or np.float32(out.scales[0]) != np.float32(1 / 256):
        raise UnsupportedModelError(f"op {op.index} SOFTMAX: output scale {float(out.scales[0]):g} zero point "
                                    f"{int(out.zero_points[0])}, TFLM requires 1/256 and -128")
    units = int(inp.shape[-1])
    if units > SOFTMAX_MAX_CLASSES:
        raise UnsupportedModelError(f"op {op.index} SOFTMAX: {units} classes, at most {SOFTMAX_MAX_CLASSES} "
                                    "are computed (TFLM's int8 softmax overflows its shift beyond)")
    real = min(float(np.float32(op.beta)) * float(inp.scales[0]) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    multiplier, shift = quantize_multiplier(real)
    if real <= 1.0 or shift < 0:
        raise UnsupportedModelError(f"op {op.index} SOFTMAX: beta * input scale {real / 2**26:g} is too small")
    diff_min = -math.floor(((1 << SOFTMAX_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS))
                           / (1 << shift))
    return Softmax(units, float(np.float32(op.beta)), multiplier, shift, diff_min)


Layer = FullyConnected | Reshape | Lookup | Softmax


def lower(model: TfliteModel, board: bool = False) -> list[Layer]:
    """The model as a chain of integer ops; refuses what the reference cannot compute."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(f"expected one input and one output tensor, found {len(model.inputs)} and {len(model.outputs)}")
    layers: list[Layer] = []
    current = model.inputs[0]
    for op in model.operators:
        if op.op not in SUPPORTED_OPS:
            raise UnsupportedModelError(
                f"op {op.index} is {op.op}; the integer reference and the AOT engine compute only "
                f"{', '.join(SUPPORTED_OPS)} (use the TFLM engine for this model)")
        if not op.inputs or op.inputs[0] != current:
            raise UnsupportedModelError(f"op {op.index} {op.op} does not follow the previous op: only chains are supported")
        if op.op == "FULLY_CONNECTED":
            layers.append(lower_fully_connected(model, op, board))
        elif op.op == "SOFTMAX":
            layers.append(lower_softmax(model, op))
        elif op.op == "RESHAPE":
            layers.append(lower_reshape(model, op))
        else:
            layers.append(lower_lookup(model, op))
        current = op.outputs[0]
    if current != model.outputs[0]:
        raise UnsupportedModelError("the chain of ops does not end at the model's output")
    return layers


def apply(layer: Layer, x: np.ndarray) -> np.ndarray:
    """One lowered op on int8 [batch, width]."""
    if isinstance(layer, FullyConnected):
        return fully_connected(layer, x)
    if isinstance(layer, Softmax):
        return softmax(layer, x)
    if isinstance(layer, Reshape):
        return np.asarray(x, dtype=np.int8).reshape(len(x), layer.units)
    return layer.codes(x)


def run(model: TfliteModel, codes: np.ndarray, board: bool = False) -> np.ndarray:
    """int8 input codes [batch, inputs] -> int8 output codes [batch, outputs]; board: as the
    board's TFLM library computes them (see lower_fully_connected)."""
    x = np.asarray(codes, dtype=np.int8).reshape(len(codes), -1)
    for layer in lower(model, board):
        x = apply(layer, x)
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
