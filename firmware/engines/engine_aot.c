/* The ahead-of-time engine: TFLM's int8 FULLY_CONNECTED, LOGISTIC, TANH and SOFTMAX reference
 * arithmetic in plain C, run over the layers the pipeline emits into model_aot.h (tables and
 * their order, nothing else). Nothing to allocate, so it has no arena and nothing to initialise.
 * LOGISTIC and TANH arrive as their 256 answers, SOFTMAX as its exps of each logit difference
 * (both computed by the integer reference, pipeline/int8/reference.py); what depends on more
 * than one input is computed here. A RESHAPE (same scale and zero point) has no step: the bytes
 * stay as they are.
 *
 * The tables are static constants of this translation unit, so the compiler sees every
 * weight and multiplier: each layer's sizes, its output offset and clamp, and a per-tensor
 * multiplier and shift are constants in its code.
 *
 * FULLY_CONNECTED, as the emitter prepares it (pipeline/emit/aot.py):
 * - the input zero point is folded into the bias (bias + input_offset * the row's weight sum), so
 *   the dot product runs over the raw input codes;
 * - the weights are int16 pairs, for the Cortex-M4's SMLAD (two 16-bit multiply-accumulates in
 *   one instruction): of each group of four inputs, word 2g holds the weights of inputs 4g
 *   (low half) and 4g + 2 (high), word 2g + 1 those of 4g + 1 and 4g + 3. That is the order in
 *   which SXTB16 widens four input bytes loaded as one word: bytes 0 and 2, then, rotated by 8
 *   bits, bytes 1 and 3. A last group of two or three inputs is padded with zero weights to two
 *   words; one of a single input is one word (its low half).
 * With __ARM_FEATURE_DSP (the M4) the dot product uses SMLAD and SXTB16 (ACLE, arm_acle.h), two
 * output rows at a time so each input word is widened once for both; elsewhere a portable loop
 * reads the same tables one weight at a time. AOT_SIMD (0 or 1) overrides the choice: the tests
 * build the SMLAD path on the host with their own definitions of __smlad and __sxtb16. Both sum
 * in int32 with wrap-around, as TFLM's int32 accumulator does, so they agree to the bit. */
#include <string.h>

#include "engine.h"

#include "model_aot.h"

/* A model the AOT engine cannot run: model_aot.h's own #error has said why, and that stays the
 * build's one error (nothing below compiles without the tables). */
#ifndef MODEL_AOT_UNSUPPORTED

#if !defined(MODEL_AOT_FORMAT) || MODEL_AOT_FORMAT != 2
#error "model_aot.h has another table layout than this engine reads: emit it again (python -m pipeline.build)"
#endif

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

/* One FULLY_CONNECTED layer: y[o] = clamp(requantize(bias[o] + sum_i x[i] * weights[o][i],
 * multipliers[o], shifts[o]) + output_offset, act_min, act_max), with one multiplier and shift
 * for every output unless per_channel. */
struct aot_layer {
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

#define AOT_LAYER(inputs, units, weights, bias, multipliers, shifts, per_channel, output_offset, act_min, \
                  act_max)                                                                               \
  {inputs, units, weights, bias, multipliers, shifts, per_channel, output_offset, act_min, act_max},

/* A model of FULLY_CONNECTED layers only has no other entries and does not count them. */
#ifndef MODEL_AOT_FC_COUNT
#define MODEL_AOT_FC_COUNT MODEL_AOT_LAYER_COUNT
#define MODEL_AOT_LOOKUP_COUNT 0
#define MODEL_AOT_SOFTMAX_COUNT 0
#define MODEL_AOT_COPY_COUNT 0
#endif

/* The other kinds keep their arguments in the calls (AOT_STEP_LOOKUP, AOT_STEP_SOFTMAX, AOT_STEP_COPY). */
#define AOT_LAYER_LOOKUP(units, table)
#define AOT_LAYER_SOFTMAX(units, exps, exp_count)
#define AOT_LAYER_COPY(units)

#if MODEL_AOT_FC_COUNT > 0
/* The FULLY_CONNECTED entries in call order. */
static const struct aot_layer k_layers[MODEL_AOT_FC_COUNT] = {MODEL_AOT_LAYERS(AOT_LAYER)};
#endif

static const char *g_error = "no error";

#if MODEL_AOT_SOFTMAX_COUNT > 0
/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32, rounded to nearest. */
static int32_t rounding_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t v = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
  return (int32_t)(v >= 0 ? (v >> 31) : -((-v) >> 31));
}

/* gemmlowp's RoundingDivideByPOT: x / 2^exponent, halves rounded away from zero. */
static int32_t rounding_shift_right(int32_t x, int exponent) {
  int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}
#endif

#if MODEL_AOT_FC_COUNT > 0
/* TFLM's MultiplyByQuantizedMultiplier(acc, multiplier, shift) for a multiplier in [0, 2^31):
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
static inline __attribute__((always_inline)) int32_t requantize_offset(int32_t acc, int32_t multiplier, int shift,
                                                                        int32_t offset) {
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
static inline __attribute__((always_inline)) int8_t output_code(int32_t v, int32_t lo, int32_t hi) {
#if defined(__ARM_FEATURE_SAT) && AOT_SIMD
  v = __ssat(v, 8);
  if (lo > -128) v = v < lo ? lo : v; /* a constant test: only a relu's clamp remains */
  if (hi < 127) v = v > hi ? hi : v;
#else
  v = v < lo ? lo : v > hi ? hi : v;
#endif
  return (int8_t)v;
}

#if AOT_SIMD
#if defined(__ARM_FEATURE_DSP)
/* Bytes 1 and 3 of q as two int16: SXTB16 with its rotation (one instruction). */
static inline __attribute__((always_inline)) int32_t sxtb16_ror8(int32_t q) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(q));
  return r;
}
#else
static inline int32_t sxtb16_ror8(int32_t q) { return __sxtb16((int32_t)(((uint32_t)q >> 8) | ((uint32_t)q << 24))); }
#endif

/* The weight in the low half of a pair. */
static inline __attribute__((always_inline)) int32_t low_half(int32_t pair) {
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
static inline __attribute__((always_inline)) uint64_t weight_words(const int32_t **w) {
  uint64_t pair;
  memcpy(&pair, *w, sizeof pair);
  *w += 2;
  return pair;
}

/* Four input codes as one word; the last group of a row reads only the inputs there are. */
static inline __attribute__((always_inline)) int32_t input_word(const int8_t *x, int left) {
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

#if defined(__ARM_FEATURE_DSP)
/* One group of four inputs for two rows, the input and both row pointers moved past it: one block,
 * so the compiler neither hoists the loads of an unrolled loop into more registers than the M4 has
 * nor splits the LDRDs (its Cortex-M4 tuning does): 10 instructions for 8 multiply-accumulates. The
 * input word may be unaligned (LDR allows it on the M4); the weight tables are word-aligned. */
static inline __attribute__((always_inline)) void group2(const int8_t **x, const int32_t **w0, const int32_t **w1,
                                                          int32_t *s0, int32_t *s1) {
  int32_t q, even, odd, lo, hi;
  __asm__("ldr %[q], [%[x]], #4\n\t"
          "sxtb16 %[even], %[q]\n\t"
          "sxtb16 %[odd], %[q], ror #8\n\t"
          "ldrd %[lo], %[hi], [%[w0]], #8\n\t"
          "smlad %[s0], %[even], %[lo], %[s0]\n\t"
          "smlad %[s0], %[odd], %[hi], %[s0]\n\t"
          "ldrd %[lo], %[hi], [%[w1]], #8\n\t"
          "smlad %[s1], %[even], %[lo], %[s1]\n\t"
          "smlad %[s1], %[odd], %[hi], %[s1]"
          : [s0] "+r"(*s0), [s1] "+r"(*s1), [x] "+r"(*x), [w0] "+r"(*w0), [w1] "+r"(*w1), [q] "=&r"(q),
            [even] "=&r"(even), [odd] "=&r"(odd), [lo] "=&r"(lo), [hi] "=&r"(hi)
          : "m"(*(const struct aot_input_word *)*x), "m"(*(const struct aot_words *)*w0),
            "m"(*(const struct aot_words *)*w1));
}
#endif

/* Two rows' dot products with the inputs: each input word widened once, four SMLADs. */
static inline __attribute__((always_inline)) void dot2(const int8_t *x, int n, const int32_t *w0,
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

static inline __attribute__((always_inline)) int32_t dot(const int8_t *x, int n, const int32_t *w, int32_t acc) {
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

/* TFLM's reference FullyConnected for int8, over the emitted tables (above). */
static inline __attribute__((always_inline)) void fully_connected(const struct aot_layer *layer,
                                                                   const int8_t *restrict x, int8_t *restrict y) {
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
#endif

#if MODEL_AOT_LOOKUP_COUNT > 0
/* LOGISTIC or TANH: one int8 in, one int8 out, so the op is its table of 256 answers. */
static void lookup(const int8_t *x, int n, const int8_t *table, int8_t *y) {
  for (int i = 0; i < n; ++i) y[i] = table[x[i] + 128];
}
#endif

#if MODEL_AOT_SOFTMAX_COUNT > 0
/* gemmlowp's SaturatingRoundingMultiplyByPOT for exponent 1 or 2: x * 2^exponent, saturated. */
static int32_t saturating_shift_left(int32_t x, int exponent) {
  int32_t limit = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
  if (x > limit) return INT32_MAX;
  if (x < -limit) return INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) in Q0.31 for a in [0, 1) in Q0.31, by
 * three Newton-Raphson steps on the half denominator (in Q2.29) from 48/17 - 32/17 * d. */
static int32_t one_over_one_plus_x(int32_t a) {
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
static void softmax(const int8_t *x, int n, const int32_t *exps, int exp_count, int8_t *y) {
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
#endif

/* One step of the chain per MODEL_AOT_LAYERS entry, unrolled by the preprocessor: each call
 * sees a constant layer index, so the compiler specialises it to that layer's sizes and offsets.
 * k counts the entries (the scratch row, the last one writes the output), f the FULLY_CONNECTED
 * ones (k_layers): the same number in a model of FULLY_CONNECTED layers only. */
#define AOT_STEP(...)                                                     \
  {                                                                       \
    int8_t *y = k + 1 == MODEL_AOT_LAYER_COUNT ? output : scratch[k % 2]; \
    fully_connected(&k_layers[f], x, y);                                  \
    x = y;                                                                \
    ++k;                                                                  \
    ++f;                                                                  \
  }
#define AOT_STEP_LOOKUP(units, table)                                     \
  {                                                                       \
    int8_t *y = k + 1 == MODEL_AOT_LAYER_COUNT ? output : scratch[k % 2]; \
    lookup(x, units, table, y);                                           \
    x = y;                                                                \
    ++k;                                                                  \
  }
#define AOT_STEP_SOFTMAX(units, exps, exp_count)                          \
  {                                                                       \
    int8_t *y = k + 1 == MODEL_AOT_LAYER_COUNT ? output : scratch[k % 2]; \
    softmax(x, units, exps, exp_count, y);                                \
    x = y;                                                                \
    ++k;                                                                  \
  }
/* A model of RESHAPEs only: its output is its input. */
#define AOT_STEP_COPY(units) \
  {                          \
    memcpy(output, x, units); \
    ++k;                     \
  }

/* The model: every layer in turn. Out of line, so its machine code stays one function to read
 * (and measure); inlining it saves the call (4 instructions and 8 B of stack on the neuron). */
__attribute__((noinline)) static void run_model(const int8_t *input, int8_t *output) {
  int8_t scratch[2][MODEL_AOT_MAX_UNITS];
  const int8_t *x = input;
  int k = 0;
#if MODEL_AOT_FC_COUNT > 0
  int f = 0;
#endif
  MODEL_AOT_LAYERS(AOT_STEP)
  (void)scratch;
  (void)x;
  (void)k;
}

int engine_init(void) { return 0; }

int engine_invoke(const int8_t *input, int8_t *output) {
  if (input == NULL || output == NULL) {
    g_error = "invoke: null buffer";
    return -1;
  }
  run_model(input, output);
  return 0;
}

const char *engine_name(void) { return "aot"; }

size_t engine_arena_used(void) { return 0; }

const char *engine_error(void) { return g_error; }

#endif /* MODEL_AOT_UNSUPPORTED */
