/* What the AOT engine's kernels share: TFLM's requantization and its roundings, the output clamp,
 * the choice of the Cortex-M4's DSP path, and the walk over two broadcast operands. Included by the
 * kernels (one header each, aot/<op>.h), which the emitted model_aot.h includes for the ops it has:
 * one translation unit, engine_aot.c, so every table is a constant the compiler folds into the code. */
#ifndef AOT_COMMON_H
#define AOT_COMMON_H

#include <stdint.h>
#include <string.h>

/* AOT_SIMD (0 or 1): the DSP path (SMLAD, SXTB16, SSAT) where the target has it; the tests build it on
 * the host with their own definitions of __smlad and __sxtb16. */
#ifndef AOT_SIMD
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define AOT_SIMD 1
#else
#define AOT_SIMD 0
#endif
#endif

#if AOT_SIMD && defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#define AOT_INLINE static inline __attribute__((always_inline))
#define AOT_UNUSED __attribute__((unused))

/* TFLM's MultiplyByQuantizedMultiplier(acc, multiplier, shift) + offset, for a multiplier in [0, 2^31):
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2^left, multiplier), right), both
 * roundings in one 64-bit sum. Why that is exact:
 * - the high multiply's rounding (add 2^30, or 1 - 2^30 below zero, then truncate toward zero)
 *   equals floor((acc * multiplier + 2^30) / 2^31) for every product; its one saturating case
 *   needs a multiplier of -2^31, which QuantizeMultiplier never gives;
 * - RoundingDivideByPOT(x, r) is floor((x + 2^(r-1) - [x < 0]) / 2^r), and floor(floor(z) / 2^r)
 *   is floor(z / 2^r), so the two make floor((p + 2^30 + 2^(30+r) - [x < 0] * 2^31) / 2^(31+r))
 *   with p = acc * multiplier;
 * - [x < 0] can be [acc < 0]: they differ only where -2^30 <= p <= 0, and there both give 0 when
 *   r >= 1.
 * A left shift (a multiplier of 1 or more) is TFLM's int32 multiply acc * (1 << left), which
 * wraps around like the unsigned shift here. */
AOT_INLINE AOT_UNUSED int32_t requantize_offset(int32_t acc, int32_t multiplier, int shift, int32_t offset) {
  if (shift >= 0) {
    int32_t shifted = (int32_t)((uint32_t)acc << shift);
    int32_t y = (int32_t)(((int64_t)shifted * multiplier + ((int64_t)1 << 30)) >> 31);
    return (int32_t)((uint32_t)y + (uint32_t)offset); /* TFLM's int32 sum, wrapping */
  }
  /* nudge = 2^30 + 2^(30+r) - [acc < 0] * 2^31 + offset * 2^(31+r) as its two words, from acc's
   * sign bit. The offset, a whole multiple of the divisor, comes out added to the quotient: exact,
   * and |y| < 2^30 here, so TFLM's int32 sum y + offset cannot wrap. Up to r = 23 the offset term
   * (|offset| <= 2^7) keeps the sum within int64 (|acc * multiplier| < 2^62); beyond, it is added
   * to the quotient. */
  const int fold = -shift <= 23;
  uint32_t sign = (uint32_t)acc & 0x80000000u, low;
  int32_t high;
  if (shift == -1) { /* 2^30 + 2^31 fills the low word: the sign flips its top bit, no carry */
    low = 0xC0000000u ^ sign;
    high = offset;
  } else { /* 2^(30+r) is 2^(r-2) in the high word; -2^31 is 0x80000000 low, -1 high */
    low = 0x40000000u | sign;
    high = (int32_t)(((uint32_t)1 << (-shift - 2)) + (fold ? (uint32_t)offset << (-shift - 1) : 0u)) + (acc >> 31);
  }
  int64_t nudge = (int64_t)(((uint64_t)(uint32_t)high << 32) | low);
  int32_t y = (int32_t)(((int64_t)acc * multiplier + nudge) >> (31 - shift));
  return fold ? y : (int32_t)((uint32_t)y + (uint32_t)offset);
}

/* The output code, clamped to the activation's range. */
AOT_INLINE AOT_UNUSED int8_t output_code(int32_t v, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_SAT) && AOT_SIMD
  v = __ssat(v, 8);
  if (lo > -128) v = v < lo ? lo : v; /* a constant test: only a relu's clamp remains */
  if (hi < 127) v = v > hi ? hi : v;
#else
  v = v < lo ? lo : v > hi ? hi : v;
#endif
  return (int8_t)v;
}

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32, rounded to nearest. */
AOT_INLINE AOT_UNUSED int32_t rounding_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t v = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
  return (int32_t)(v >= 0 ? (v >> 31) : -((-v) >> 31));
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent, halves rounded away from zero. */
AOT_INLINE AOT_UNUSED int32_t rounding_shift_right(int32_t x, int exponent) {
  int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM's MultiplyByQuantizedMultiplier in its two steps, as written (for the ops whose values are
 * not on the requantize_offset fast path): the int32 left shift, the doubling high multiply, the
 * rounding right shift. */
AOT_INLINE AOT_UNUSED int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
  int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return rounding_shift_right(rounding_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

/* Two operands broadcast to an output of up to AOT_MAX_RANK dimensions: each operand's step (in
 * values) along each output dimension, 0 where it repeats. */
#define AOT_MAX_RANK 6
struct aot_broadcast {
  int rank;
  int32_t shape[AOT_MAX_RANK];  /* the output's */
  int32_t step_a[AOT_MAX_RANK];
  int32_t step_b[AOT_MAX_RANK];
};

/* Where a walk over the output (last dimension fastest) is in each operand. */
struct aot_walk {
  int32_t index[AOT_MAX_RANK];
  int32_t a, b;
};

AOT_INLINE AOT_UNUSED int32_t broadcast_count(const struct aot_broadcast *bc) {
  int32_t total = 1;
  for (int d = 0; d < bc->rank; ++d) total *= bc->shape[d];
  return total;
}

/* The walk's next output value: the odometer turns, each operand moves by its steps. */
AOT_INLINE AOT_UNUSED void broadcast_next(const struct aot_broadcast *bc, struct aot_walk *w) {
  for (int d = bc->rank - 1; d >= 0; --d) {
    w->a += bc->step_a[d];
    w->b += bc->step_b[d];
    if (++w->index[d] < bc->shape[d]) return;
    w->a -= bc->step_a[d] * bc->shape[d];
    w->b -= bc->step_b[d] * bc->shape[d];
    w->index[d] = 0;
  }
}

#endif
