/* FULLY_CONNECTED: TFLM's int8 reference arithmetic over the tables the emitter writes
 * (pipeline/int8/ops/fully_connected.py), which prepares them so:
 * - the input zero point is folded into the bias (bias + input_offset * the row's weight sum), so
 *   the dot product runs over the raw input codes;
 * - the weights stay int8, as in the flatbuffer, four codes a word: code 4g + k of a row in byte k
 *   of its word g, the last word of a row padded with zero weights. Rows go in fours, interleaved a
 *   word at a time (row 4q + r's word g is word 4q * groups + 4g + r); the last units % 4 rows
 *   follow, one after another.
 * With AOT_SIMD (the M4) one pass over the inputs feeds four rows: each word of four input codes
 * is loaded and widened once (SXTB16 takes bytes 0 and 2, and after a rotation by 8 bits bytes 1
 * and 3), each weight word widened the same way, and SMLAD does two 16-bit multiply-accumulates:
 * 21 instructions for 16 MACs. Elsewhere a portable loop reads the same tables one weight at a
 * time. Both sum in int32 with wrap-around, as TFLM's int32 accumulator does, so they agree to the
 * bit. Every call is inlined: with the layer a constant of the translation unit, its sizes, output
 * offset, clamp and a per-tensor multiplier and shift become constants in its code. */
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
  const int32_t *weights;     /* int8 codes four a word, rows interleaved in fours (above) */
  const int32_t *bias;        /* [units], the input offset folded in */
  const int32_t *multipliers; /* [units] or [1], Q31 fixed point in [0.5, 1), or 0 */
  const int8_t *shifts;       /* [units] or [1], the power of two beside each multiplier */
  int per_channel;            /* 1: a multiplier and shift per output; 0: one for all */
  int32_t output_offset;      /* the output's zero point */
  int32_t act_min;            /* the fused activation's range in output codes */
  int32_t act_max;
};

/* The last `left` (0 to 3) inputs of a row against its last word: a multiply-accumulate each, its
 * weight a constant the compiler takes out of the word. */
AOT_INLINE int32_t fc_tail(const int8_t *x, int left, int32_t word, int32_t acc) {
  uint32_t sum = (uint32_t)acc;
  for (int i = 0; i < left; ++i) sum += (uint32_t)(x[i] * (int8_t)(uint8_t)((uint32_t)word >> (8 * i)));
  return (int32_t)sum;
}

#if AOT_SIMD
/* One group of four inputs, already widened (even: codes 0 and 2, odd: 1 and 3), into the four
 * accumulators of a pass from its four weight words. */
AOT_INLINE void fc_group4(int32_t even, int32_t odd, const int32_t *w, int32_t *s) {
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    s[r] = __smlad(even, __sxtb16(w[r]), s[r]);
    s[r] = __smlad(odd, aot_sxtb16_ror8(w[r]), s[r]);
  }
}

#if defined(__ARM_FEATURE_DSP)
/* One group of four inputs for the four rows of a pass, the input and weight pointers moved past
 * it: 21 instructions for 16 multiply-accumulates. In asm, so the compiler neither hoists the loads
 * of an unrolled loop into more registers than the M4 has nor splits the LDRDs (its Cortex-M4
 * tuning does). The input word may be unaligned (LDR allows it on the M4); the weight table is
 * word-aligned, as LDRD needs. t holds the input word, then each weight word's even half; a and b
 * a pair of weight words, then their odd halves. */
#define AOT_FC_ROWS2(sa, sb)                                       \
  "ldrd %[a], %[b], [%[w]], #8\n\t"                                \
  "sxtb16 %[t], %[a]\n\t"                                          \
  "smlad %[" sa "], %[even], %[t], %[" sa "]\n\t"                  \
  "sxtb16 %[a], %[a], ror #8\n\t"                                  \
  "smlad %[" sa "], %[odd], %[a], %[" sa "]\n\t"                   \
  "sxtb16 %[t], %[b]\n\t"                                          \
  "smlad %[" sb "], %[even], %[t], %[" sb "]\n\t"                  \
  "sxtb16 %[b], %[b], ror #8\n\t"                                  \
  "smlad %[" sb "], %[odd], %[b], %[" sb "]\n\t"
#define AOT_FC_GROUP4                                              \
  "ldr %[t], [%[x]], #4\n\t"                                       \
  "sxtb16 %[even], %[t]\n\t"                                       \
  "sxtb16 %[odd], %[t], ror #8\n\t"                                \
  AOT_FC_ROWS2("s0", "s1") AOT_FC_ROWS2("s2", "s3")
#define AOT_FC_GROUP4_OPERANDS                                                                          \
  : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(p), [w] "+r"(w), [t] "=&r"(t), \
    [even] "=&r"(even), [odd] "=&r"(odd), [a] "=&r"(a), [b] "=&r"(b)                                   \
  : "m"(*(const struct aot_fc_codes *)p), "m"(*(const struct aot_fc_words *)w)

/* What the asm reads in one block: two groups' input codes and weight words. */
struct aot_fc_codes {
  int8_t code[8];
};
struct aot_fc_words {
  int32_t word[8];
};
#endif

/* The four rows of a pass (w: its first word) over n inputs, added to s[0..3]. */
AOT_INLINE void fc_dot4(const int8_t *x, int n, const int32_t *w, int32_t *s) {
  const int groups = n / 4;
#if defined(__ARM_FEATURE_DSP)
  int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
  const int8_t *p = x;
  int32_t t, even, odd, a, b;
  if (groups <= 4) { /* a short row: unrolled whole, no loop left */
#pragma GCC unroll 4
    for (int g = 0; g < groups; ++g) __asm__(AOT_FC_GROUP4 AOT_FC_GROUP4_OPERANDS);
  } else { /* two groups a turn, the loop in the asm too: 42 instructions and the count's two */
    int turns = groups / 2;
    __asm__("1:\n\t" AOT_FC_GROUP4 AOT_FC_GROUP4 "subs %[turns], %[turns], #1\n\tbne 1b\n\t"
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(p), [w] "+r"(w), [t] "=&r"(t),
              [even] "=&r"(even), [odd] "=&r"(odd), [a] "=&r"(a), [b] "=&r"(b), [turns] "+r"(turns)
            : : "cc", "memory");
    if (groups % 2) __asm__(AOT_FC_GROUP4 AOT_FC_GROUP4_OPERANDS);
  }
  s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
#else
  for (int g = 0; g < groups; ++g, w += 4) {
    const int32_t q = aot_word(x + 4 * g);
    fc_group4(__sxtb16(q), aot_sxtb16_ror8(q), w, s);
  }
#endif
  if (n % 4) { /* the last one to three inputs */
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) s[r] = fc_tail(x + 4 * groups, n % 4, w[r], s[r]);
  }
}

/* One row of the last units % 4 (its words consecutive) over n inputs, added to acc. */
AOT_INLINE int32_t fc_dot1(const int8_t *x, int n, const int32_t *w, int32_t acc) {
  const int groups = n / 4;
#pragma GCC unroll 4
  for (int g = 0; g < groups; ++g) {
    const int32_t q = aot_word(x + 4 * g);
    acc = __smlad(__sxtb16(q), __sxtb16(w[g]), acc);
    acc = __smlad(aot_sxtb16_ror8(q), aot_sxtb16_ror8(w[g]), acc);
  }
  return n % 4 ? fc_tail(x + 4 * groups, n % 4, w[groups], acc) : acc;
}
#else
/* The portable dot product: one weight at a time, byte i % 4 of the row's word i / 4 (words
 * `stride` apart: 4 in an interleaved pass of four rows, 1 in the rows after). */
static int32_t fc_dot(const int8_t *x, int n, const int32_t *w, int stride, int32_t acc) {
  uint32_t sum = (uint32_t)acc;
  for (int i = 0; i < n; ++i) {
    const int8_t weight = (int8_t)(uint8_t)((uint32_t)w[(i / 4) * stride] >> (8 * (i % 4)));
    sum += (uint32_t)(x[i] * weight);
  }
  return (int32_t)sum;
}
#endif

/* One output of a row: requantized, offset, clamped. */
AOT_INLINE int8_t fc_output(const struct aot_fully_connected *layer, int o, int32_t acc) {
  const int c = layer->per_channel ? o : 0;
  return output_code(requantize_offset(acc, layer->multipliers[c], layer->shifts[c], layer->output_offset),
                     layer->act_min, layer->act_max);
}

/* One row of TFLM's reference FullyConnected for int8, over the emitted tables (above). */
AOT_INLINE void fully_connected_row(const struct aot_fully_connected *layer, const int8_t *restrict x,
                                    int8_t *restrict y) {
  const int n = layer->inputs, groups = (n + 3) / 4, passes = layer->units / 4;
  const int32_t *const rest = layer->weights + 4 * passes * groups; /* the rows after the passes */
  int o = 0;
#if AOT_SIMD
  for (const int32_t *w = layer->weights; o < 4 * passes; o += 4, w += 4 * groups) {
    int32_t s[4] = {layer->bias[o], layer->bias[o + 1], layer->bias[o + 2], layer->bias[o + 3]};
    fc_dot4(x, n, w, s);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) y[o + r] = fc_output(layer, o + r, s[r]);
  }
  for (; o < layer->units; ++o) {
    y[o] = fc_output(layer, o, fc_dot1(x, n, rest + (o - 4 * passes) * groups, layer->bias[o]));
  }
#else
  for (; o < layer->units; ++o) {
    const int in_pass = o < 4 * passes;
    const int32_t *w = in_pass ? layer->weights + (o / 4) * 4 * groups + o % 4 : rest + (o - 4 * passes) * groups;
    y[o] = fc_output(layer, o, fc_dot(x, n, w, in_pass ? 4 : 1, layer->bias[o]));
  }
#endif
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
