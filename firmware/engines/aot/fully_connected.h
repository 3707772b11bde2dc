/* FULLY_CONNECTED: TFLM's int8 reference arithmetic over the tables the emitter writes
 * (pipeline/int8/ops/fully_connected.py), which prepares them so:
 * - the input zero point is folded into the bias (bias + input_offset * the row's weight sum), so
 *   the dot product runs over the raw input codes;
 * - the weights are int16 pairs, for the Cortex-M4's SMLAD (two 16-bit multiply-accumulates in
 *   one instruction): of each group of four inputs, word 2g holds the weights of inputs 4g
 *   (low half) and 4g + 2 (high), word 2g + 1 those of 4g + 1 and 4g + 3. That is the order in
 *   which SXTB16 widens four input bytes loaded as one word: bytes 0 and 2, then, rotated by 8
 *   bits, bytes 1 and 3. A last group of two or three inputs is padded with zero weights to two
 *   words; one of a single input is one word (its low half).
 * With AOT_SIMD (the M4) the dot product uses SMLAD and SXTB16 (ACLE, arm_acle.h), two output rows
 * at a time so each input word is widened once for both; elsewhere a portable loop reads the same
 * tables one weight at a time. Both sum in int32 with wrap-around, as TFLM's int32 accumulator
 * does, so they agree to the bit. Every call is inlined: with the layer a constant of the
 * translation unit, its sizes, output offset, clamp and a per-tensor multiplier and shift become
 * constants in its code. */
#ifndef AOT_FULLY_CONNECTED_H
#define AOT_FULLY_CONNECTED_H

#include "aot/common.h"

/* One FULLY_CONNECTED layer: y[o] = clamp(requantize(bias[o] + sum_i x[i] * weights[o][i],
 * multipliers[o], shifts[o]) + output_offset, act_min, act_max), with one multiplier and shift
 * for every output unless per_channel. */
struct aot_fully_connected {
  int rows;                   /* rows of inputs (1, or the leading dimensions kept with keep_num_dims) */
  int inputs;
  int units;
  const int32_t *weights;     /* [units][words per row], int16 pairs (above) */
  const int32_t *bias;        /* [units], the input offset folded in */
  const int32_t *multipliers; /* [units] or [1], Q31 fixed point in [0.5, 1), or 0 */
  const int8_t *shifts;       /* [units] or [1], the power of two beside each multiplier */
  int per_channel;            /* 1: a multiplier and shift per output; 0: one for all */
  int32_t output_offset;      /* the output's zero point */
  int32_t act_min;            /* the fused activation's range in output codes */
  int32_t act_max;
};

#if AOT_SIMD
#if defined(__ARM_FEATURE_DSP)
/* Bytes 1 and 3 of q as two int16: SXTB16 with its rotation (one instruction). */
AOT_INLINE int32_t sxtb16_ror8(int32_t q) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(q));
  return r;
}
#else
static inline int32_t sxtb16_ror8(int32_t q) { return __sxtb16((int32_t)(((uint32_t)q >> 8) | ((uint32_t)q << 24))); }
#endif

/* The weight in the low half of a pair. */
AOT_INLINE int32_t low_half(int32_t pair) {
  return (int16_t)(uint16_t)((uint32_t)pair & 0xFFFFu);
}

/* What the asm below reads: a group's two weight words, two groups' input codes. */
struct aot_words {
  int32_t word[2];
};
struct aot_input_words {
  int8_t code[8];
};

/* A group's two weight words, the row pointer moved past them (the host build of this path). */
AOT_INLINE uint64_t weight_words(const int32_t **w) {
  uint64_t pair;
  memcpy(&pair, *w, sizeof pair);
  *w += 2;
  return pair;
}

/* Four input codes as one word; the last group of a row reads only the inputs there are. */
AOT_INLINE int32_t input_word(const int8_t *x, int left) {
  if (left >= 4) {
    uint32_t q;
    memcpy(&q, x, sizeof q); /* one LDR: the M4 loads unaligned words */
    return (int32_t)q;
  }
  uint32_t q = (uint8_t)x[0];
  if (left > 1) q |= (uint32_t)(uint8_t)x[1] << 8;
  if (left > 2) q |= (uint32_t)(uint8_t)x[2] << 16;
  return (int32_t)q;
}

#if defined(__ARM_FEATURE_DSP)
/* One group of four inputs for two rows, the input and both row pointers moved past it: 9
 * instructions for 8 multiply-accumulates. In asm, so the compiler neither hoists the loads of an
 * unrolled loop into more registers than the M4 has nor splits the LDRDs (its Cortex-M4 tuning
 * does). The input word may be unaligned (LDR allows it on the M4); the weight tables are
 * word-aligned. */
#define AOT_GROUP2 \
  "ldr %[q], [%[x]], #4\n\t"                                                          \
  "sxtb16 %[even], %[q]\n\t"                                                         \
  "sxtb16 %[odd], %[q], ror #8\n\t"                                                  \
  "ldrd %[lo], %[hi], [%[w0]], #8\n\t"                                               \
  "smlad %[s0], %[even], %[lo], %[s0]\n\t"                                           \
  "smlad %[s0], %[odd], %[hi], %[s0]\n\t"                                            \
  "ldrd %[lo], %[hi], [%[w1]], #8\n\t"                                               \
  "smlad %[s1], %[even], %[lo], %[s1]\n\t"                                           \
  "smlad %[s1], %[odd], %[hi], %[s1]\n\t"
#define AOT_GROUP2_OPERANDS                                                                               \
  : [s0] "+r"(s0), [s1] "+r"(s1), [x] "+r"(p), [w0] "+r"(w0), [w1] "+r"(w1), [q] "=&r"(q), [even] "=&r"(even), \
    [odd] "=&r"(odd), [lo] "=&r"(lo), [hi] "=&r"(hi)                                                      \
  : "m"(*(const struct aot_input_words *)p), "m"(*(const struct aot_words *)w0),                          \
    "m"(*(const struct aot_words *)w1)
#endif


/* Two rows' dot products with the inputs: each input word widened once, four SMLADs. */
AOT_INLINE void dot2(const int8_t *x, int n, const int32_t *w0,
                                                        const int32_t *w1, int32_t *a0, int32_t *a1) {
  int32_t s0 = *a0, s1 = *a1;
  const int groups = n / 4;
  int i = 4 * groups;
#if defined(__ARM_FEATURE_DSP)
  const int8_t *p = x;
  int32_t q, even, odd, lo, hi;
  if (groups <= 8) { /* a short row: unrolled whole, no loop left */
#pragma GCC unroll 8
    for (int g = 0; g < groups; ++g) __asm__(AOT_GROUP2 AOT_GROUP2_OPERANDS);
  } else { /* two groups a turn, in one block: 18 instructions and the loop's few */
    const int8_t *const pairs_end = x + 8 * (groups / 2);
    while (p != pairs_end) __asm__(AOT_GROUP2 AOT_GROUP2 AOT_GROUP2_OPERANDS);
    if (groups % 2) __asm__(AOT_GROUP2 AOT_GROUP2_OPERANDS);
  }
#else
  for (int g = 0; g < groups; ++g) {
    int32_t q = input_word(x + 4 * g, 4);
    int32_t even = __sxtb16(q), odd = sxtb16_ror8(q);
    uint64_t p0 = weight_words(&w0), p1 = weight_words(&w1);
    s0 = __smlad(even, (int32_t)(uint32_t)p0, s0);
    s1 = __smlad(even, (int32_t)(uint32_t)p1, s1);
    s0 = __smlad(odd, (int32_t)(uint32_t)(p0 >> 32), s0);
    s1 = __smlad(odd, (int32_t)(uint32_t)(p1 >> 32), s1);
  }
#endif
  if (n - i == 1) { /* one input left: a multiply-accumulate each */
    s0 = (int32_t)((uint32_t)s0 + (uint32_t)(x[i] * low_half(w0[0])));
    s1 = (int32_t)((uint32_t)s1 + (uint32_t)(x[i] * low_half(w1[0])));
  } else if (i < n) { /* the last two or three inputs */
    int32_t last = input_word(x + i, n - i);
    int32_t last_even = __sxtb16(last), last_odd = sxtb16_ror8(last);
    s0 = __smlad(last_even, w0[0], s0);
    s1 = __smlad(last_even, w1[0], s1);
    s0 = __smlad(last_odd, w0[1], s0);
    s1 = __smlad(last_odd, w1[1], s1);
  }
  *a0 = s0;
  *a1 = s1;
}

AOT_INLINE int32_t dot(const int8_t *x, int n, const int32_t *w, int32_t acc) {
  int i = 0;
#pragma GCC unroll 4
  for (; i + 4 <= n; i += 4, w += 2) {
    int32_t q = input_word(x + i, 4);
    acc = __smlad(__sxtb16(q), w[0], acc);
    acc = __smlad(sxtb16_ror8(q), w[1], acc);
  }
  if (n - i == 1) {
    acc = (int32_t)((uint32_t)acc + (uint32_t)(x[i] * low_half(w[0])));
  } else if (i < n) {
    int32_t q = input_word(x + i, n - i);
    acc = __smlad(__sxtb16(q), w[0], acc);
    acc = __smlad(sxtb16_ror8(q), w[1], acc);
  }
  return acc;
}
#else
/* The portable dot product: one weight at a time, out of its int16 pair. */
static int32_t dot(const int8_t *x, int n, const int32_t *w, int32_t acc) {
  uint32_t sum = (uint32_t)acc;
  for (int i = 0; i < n; ++i) {
    uint32_t word = (uint32_t)w[2 * (i / 4) + (i & 1)];
    int32_t weight = (int16_t)(uint16_t)((i & 2) ? word >> 16 : word & 0xFFFFu);
    sum += (uint32_t)(x[i] * weight);
  }
  return (int32_t)sum;
}
#endif

/* One row of TFLM's reference FullyConnected for int8, over the emitted tables (above). */
AOT_INLINE void fully_connected_row(const struct aot_fully_connected *layer, const int8_t *restrict x,
                                    int8_t *restrict y) {
  const int n = layer->inputs, words = 2 * (n / 4) + (n % 4 == 0 ? 0 : n % 4 == 1 ? 1 : 2);
  int o = 0;
#if AOT_SIMD
  for (; o + 1 < layer->units; o += 2) {
    int32_t a0 = layer->bias[o], a1 = layer->bias[o + 1];
    dot2(x, n, layer->weights + o * words, layer->weights + (o + 1) * words, &a0, &a1);
    int c0 = layer->per_channel ? o : 0, c1 = layer->per_channel ? o + 1 : 0;
    y[o] = output_code(requantize_offset(a0, layer->multipliers[c0], layer->shifts[c0], layer->output_offset),
                       layer->act_min, layer->act_max);
    y[o + 1] = output_code(requantize_offset(a1, layer->multipliers[c1], layer->shifts[c1], layer->output_offset),
                           layer->act_min, layer->act_max);
  }
#endif
  for (; o < layer->units; ++o) {
    int32_t acc = dot(x, n, layer->weights + o * words, layer->bias[o]);
    int c = layer->per_channel ? o : 0;
    y[o] = output_code(requantize_offset(acc, layer->multipliers[c], layer->shifts[c], layer->output_offset),
                       layer->act_min, layer->act_max);
  }
}

/* TFLM's reference FullyConnected for int8, over the emitted tables (above): rows of `inputs`
 * values (one, or more for keep_num_dims) into rows of `units`. */
AOT_INLINE void aot_fully_connected(const struct aot_fully_connected *layer, const int8_t *restrict input,
                                    int8_t *restrict output) {
  for (int row = 0; row < layer->rows; ++row) {
    fully_connected_row(layer, input + row * layer->inputs, output + row * layer->units);
  }
}

#endif
