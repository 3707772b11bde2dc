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

/* Four bytes as one word: one LDR on the M4, which loads unaligned words (the convolutions' rows of
 * int8 weights start anywhere). */
AOT_INLINE AOT_UNUSED int32_t aot_word(const int8_t *p) {
  uint32_t q;
  memcpy(&q, p, sizeof q);
  return (int32_t)q;
}

#if AOT_SIMD
/* Bytes 1 and 3 of q as two int16: SXTB16 with its rotation by 8 (one instruction on the M4). */
#if defined(__ARM_FEATURE_DSP)
AOT_INLINE AOT_UNUSED int32_t aot_sxtb16_ror8(int32_t q) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(q));
  return r;
}
#else
AOT_INLINE AOT_UNUSED int32_t aot_sxtb16_ror8(int32_t q) {
  return __sxtb16((int32_t)(((uint32_t)q >> 8) | ((uint32_t)q << 24)));
}
#endif
#endif

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

/* requantize_offset's value, for the convolutions' per-channel shifts that are no constant of the
 * code: for a right shift r = -shift >= 1, floor(z / 2^(31 + r)) is floor(floor(z / 2^32) / 2^(r - 1))
 * (floors of floors), and floor(z / 2^32) is the high word SMLAL leaves (|z| < 2^62, so it fits an
 * int32): a shift of one word by r - 1 instead of a 64-bit shift by a variable amount. */
AOT_INLINE AOT_UNUSED int32_t requantize_offset_hi(int32_t acc, int32_t multiplier, int shift, int32_t offset) {
  if (shift >= 0) return requantize_offset(acc, multiplier, shift, offset);
  const int fold = -shift <= 23;
  uint32_t sign = (uint32_t)acc & 0x80000000u, low;
  int32_t high;
  if (shift == -1) {
    low = 0xC0000000u ^ sign;
    high = offset;
  } else {
    low = 0x40000000u | sign;
    high = (int32_t)(((uint32_t)1 << (-shift - 2)) + (fold ? (uint32_t)offset << (-shift - 1) : 0u)) + (acc >> 31);
  }
  int64_t z = (int64_t)acc * multiplier + (int64_t)(((uint64_t)(uint32_t)high << 32) | low);
  int32_t y = (int32_t)(uint32_t)((uint64_t)z >> 32) >> (-shift - 1);
  return fold ? y : (int32_t)((uint32_t)y + (uint32_t)offset);
}

/* requantize_offset for a right shift r = -shift in [2, 23] (a convolution's usual), with its
 * rounding constant's high word precomputed at build time: high = 2^(r - 2) + offset * 2^(r - 1)
 * (pipeline/int8/ops/conv_2d.py's quick_requantization), right = r - 1. The nudge is then its two
 * words, the sign of acc entering as in requantize_offset, and the quotient the high word of one
 * SMLAL shifted by r - 1 (see requantize_offset_hi): eight instructions with the loads. */
AOT_INLINE AOT_UNUSED int32_t requantize_quick(int32_t acc, int32_t multiplier, int32_t high, int right) {
  const uint32_t low = 0x40000000u | ((uint32_t)acc & 0x80000000u);
  const uint32_t top = (uint32_t)high + (uint32_t)(acc >> 31);
  const int64_t z = (int64_t)acc * multiplier + (int64_t)(((uint64_t)top << 32) | low);
  return (int32_t)(uint32_t)((uint64_t)z >> 32) >> right;
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

/* A convolution's per-channel records (pipeline/int8/ops/conv_2d.py's channel_records), four words a
 * channel: the bias with the input offset folded in, the multiplier, and with quick requantize_quick's
 * high word and right shift, else the shift and 0. One pointer walks them (the kernels' registers are
 * few); the layer's fields are held in locals, as the int8 stores of the outputs may alias any byte,
 * so fields read through the layer's pointer would be read again after every store. */
struct aot_channels {
  const int32_t *records;
  int quick;
  int32_t offset, lo, hi;
};

/* Channel c's output code for the sum acc, clamped to the activation's range (output_code: the
 * kernels are inlined, so its bounds are constants and only a ReLU's lower bound costs a compare). */
AOT_INLINE AOT_UNUSED int8_t aot_channel_out(struct aot_channels q, int c, int32_t acc) {
  const int32_t *r = q.records + 4 * c;
  const int32_t v = q.quick ? requantize_quick(acc, r[1], r[2], (int)r[3])
                            : requantize_offset_hi(acc, r[1], (int)r[2], q.offset);
  return output_code(v, q.lo, q.hi);
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
