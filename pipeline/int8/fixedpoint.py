"""TFLM's integer arithmetic, operation for operation: its multipliers and roundings (gemmlowp's
doubling high multiply and rounding shift, QuantizeMultiplier from frexp), int32 wrap-around, and
gemmlowp's fixed-point exp, logistic, tanh and reciprocal that its int8 LOGISTIC, TANH and SOFTMAX
use. Their results are integers defined to the last bit; every op unit (pipeline.int8.ops) builds
on these, so the ops cannot round two ways.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's QuantizeMultiplier: real = q * 2**shift with q a Q31 fixed-point in [0.5, 1)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = round_away(fraction * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def round_away(x: float) -> int:
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


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int | np.ndarray,
                                     shift: int | np.ndarray) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier on int32 x (multiplier and shift may be arrays that
    broadcast against x: one per channel). A multiplier of 1 or more (shift > 0) first shifts x left
    in int32, as the runtime does (x * (1 << shift)): a value that does not fit wraps around, and
    the kernels then requantize the wrapped value."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.where(shift > 0, shift, 0)
    right = np.where(shift > 0, 0, -shift)
    x = wrap32(np.asarray(x, dtype=np.int64) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def requantize(acc: np.ndarray, multipliers: np.ndarray, shifts: np.ndarray, offset: int, low: int,
               high: int) -> np.ndarray:
    """The conv and dense kernels' last step on int32 accumulators [..., channels]: each channel's
    multiplier and shift, + the output zero point (an int32 sum), clamped to the activation's range."""
    out = multiply_by_quantized_multiplier(acc, np.asarray(multipliers, dtype=np.int64),
                                           np.asarray(shifts, dtype=np.int64))
    return np.clip(wrap32(out + offset), low, high).astype(np.int8)


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier of each real: (multipliers, shifts) as int64 arrays."""
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    return (np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM's CalculateActivationRangeQuantized for an int8 output."""
    def q(value: float) -> int:
        return zero_point + round_away(float(np.float32(value) / np.float32(scale)))

    low, high = -128, 127
    if activation == "RELU":
        low = max(low, q(0.0))
    elif activation == "RELU6":
        low, high = max(low, q(0.0)), min(high, q(6.0))
    elif activation == "RELU_N1_TO_1":
        low, high = max(low, q(-1.0)), min(high, q(1.0))
    return low, high


def wrap32(x: np.ndarray) -> np.ndarray:
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
    x = wrap32(saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    tail = rounding_divide_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), 715827883) + x2), 1)
    result = wrap32(1895147668 + srdhm(1895147668, wrap32(x + tail)))
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
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
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        error = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + saturating_shift_left(srdhm(x, error), 2))
    return x


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) in Q0.31 for a in [0, 1) in Q0.31."""
    return saturating_shift_left(_newton_reciprocal(rounding_half_sum(a, INT32_MAX)), 1)


def one_minus_x_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """(1 - a) / (1 + a) in Q0.31 for a in [0, 1) in Q0.31."""
    return saturating_shift_left(wrap32(_newton_reciprocal(rounding_half_sum(a, INT32_MAX)) - (1 << 29)), 2)


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


def count_leading_zeros(x: np.ndarray) -> np.ndarray:
    """Of non-negative int32 values, exactly (no float log)."""
    x = np.asarray(x, dtype=np.int64)
    return 32 - sum(((x >> k) > 0).astype(np.int64) for k in range(32))
