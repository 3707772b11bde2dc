/* SOFTMAX over the last dimension: TFLM's reference int8 kernel (output scale 1/256, zero point
 * -128) over the table the emitter writes (pipeline/int8/ops/softmax.py): the exp of each logit's
 * difference from the largest, in Q0.31; the sum, its reciprocal and the rounding are computed here.
 * It may run in place (each output reads only its own logit, the maximum and the sum). */
#ifndef AOT_SOFTMAX_H
#define AOT_SOFTMAX_H

#include "aot/common.h"

struct aot_softmax {
  int rows;             /* rows of `units` logits */
  int units;
  const int32_t *exps;  /* exp(beta * scale * -d) in Q0.31 at [d], d = max - x */
  int exp_count;        /* a difference past the table's end gives 0 (the kernel leaves that logit out) */
};

/* gemmlowp's SaturatingRoundingMultiplyByPOT for exponent 1 or 2: x * 2^exponent, saturated. */
static AOT_UNUSED int32_t saturating_shift_left(int32_t x, int exponent) {
  int32_t limit = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
  if (x > limit) return INT32_MAX;
  if (x < -limit) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) in Q0.31 for a in [0, 1) in Q0.31, by
 * three Newton-Raphson steps on the half denominator (in Q2.29) from 48/17 - 32/17 * d. */
static AOT_UNUSED int32_t one_over_one_plus_x(int32_t a) {
  int64_t sum = (int64_t)a + INT32_MAX;
  int32_t half = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + rounding_high_mul(half, -1010580540);
  for (int i = 0; i < 3; ++i) {
    x += saturating_shift_left(rounding_high_mul(x, (1 << 29) - rounding_high_mul(half, x)), 2);
  }
  return saturating_shift_left(x, 1);
}

/* TFLM's reference int8 Softmax (output scale 1/256, zero point -128): exps[d] is exp(beta * scale
 * * -d) in Q0.31 for the difference d = max - x[i] (0 past exp_count, where the kernel leaves the
 * logit out); their sum in Q12.19 is normalised by its leading zeros and inverted. */
AOT_INLINE void softmax_row(const int8_t *x, int n, const int32_t *exps, int exp_count, int8_t *y) {
  int8_t max = x[0];
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  int32_t sum = 0;
  for (int i = 0; i < n; ++i) {
    int d = max - x[i];
    if (d < exp_count) sum += rounding_shift_right(exps[d], 12);
  }
  int headroom = 0; /* sum is at least 2^19 (the maximum's exp) and below 2^28 (at most 511 classes) */
  while ((((uint32_t)sum << headroom) & 0x80000000u) == 0) ++headroom;
  int32_t scale = one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
  int exponent = 12 - headroom + 31 - 8;
  for (int i = 0; i < n; ++i) {
    int d = max - x[i];
    int32_t v = d < exp_count ? rounding_shift_right(rounding_high_mul(scale, exps[d]), exponent) - 128 : -128;
    y[i] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
  }
}

AOT_INLINE void aot_softmax(const struct aot_softmax *op, const int8_t *input, int8_t *output) {
  for (int row = 0; row < op->rows; ++row) {
    softmax_row(input + row * op->units, op->units, op->exps, op->exp_count, output + row * op->units);
  }
}

#endif
