/* The ahead-of-time engine: TFLM's int8 FULLY_CONNECTED, LOGISTIC, TANH and SOFTMAX reference
 * arithmetic in plain C, run over the layers the pipeline emits into model_aot.h (tables and
 * their order, nothing else). Nothing to allocate, so it has no arena and nothing to initialise.
 * LOGISTIC and TANH arrive as their 256 answers, SOFTMAX as its exps of each logit difference
 * (both computed by the integer reference, pipeline/int8/reference.py); what depends on more
 * than one input is computed here.
 *
 * The tables are static constants of this translation unit, so the compiler sees every
 * weight and multiplier: the single neuron compiles to one multiply and its requantization. */
#include "engine.h"

#include "model_aot.h"

/* One FULLY_CONNECTED layer: y[o] = clamp(requantize(bias[o] + sum_i (x[i] + input_offset)
 * * weights[o][i], multipliers[o], shifts[o]) + output_offset, act_min, act_max). */
struct aot_layer {
  int inputs;
  int units;
  const int8_t *weights;      /* [units][inputs], row by row */
  const int32_t *bias;        /* [units] */
  const int32_t *multipliers; /* [units], Q31 fixed point in [0.5, 1) */
  const int8_t *shifts;       /* [units], the power of two beside each multiplier */
  int32_t input_offset;       /* minus the input's zero point */
  int32_t output_offset;      /* the output's zero point */
  int32_t act_min;            /* the fused activation's range in output codes */
  int32_t act_max;
};

#define AOT_LAYER(inputs, units, weights, bias, multipliers, shifts, input_offset, output_offset, act_min, \
                  act_max)                                                                                \
  {inputs, units, weights, bias, multipliers, shifts, input_offset, output_offset, act_min, act_max},

/* A model of FULLY_CONNECTED layers only has no other entries and does not count them. */
#ifndef MODEL_AOT_FC_COUNT
#define MODEL_AOT_FC_COUNT MODEL_AOT_LAYER_COUNT
#define MODEL_AOT_LOOKUP_COUNT 0
#define MODEL_AOT_SOFTMAX_COUNT 0
#endif

/* The other kinds keep their arguments in the calls (AOT_STEP_LOOKUP, AOT_STEP_SOFTMAX). */
#define AOT_LAYER_LOOKUP(units, table)
#define AOT_LAYER_SOFTMAX(units, exps, exp_count)

#if MODEL_AOT_FC_COUNT > 0
/* The FULLY_CONNECTED entries in call order. */
static const struct aot_layer k_layers[MODEL_AOT_FC_COUNT] = {MODEL_AOT_LAYERS(AOT_LAYER)};
#endif

static const char *g_error = "no error";

#if MODEL_AOT_FC_COUNT > 0 || MODEL_AOT_SOFTMAX_COUNT > 0
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
/* TFLM's reference FullyConnected for int8 with per-channel (or repeated per-tensor) multipliers. */
static void fully_connected(const int8_t *x, int n_in, const int8_t *w, const int32_t *bias, int n_out,
                            int32_t in_offset, int32_t out_offset, const int32_t *mult, const int8_t *shift,
                            int32_t lo, int32_t hi, int8_t *y) {
  for (int o = 0; o < n_out; ++o) {
    int32_t acc = bias[o];
    for (int i = 0; i < n_in; ++i) acc += (x[i] + in_offset) * w[o * n_in + i];
    int s = shift[o];
    int32_t v = rounding_shift_right(rounding_high_mul(acc * (1 << (s > 0 ? s : 0)), mult[o]), s > 0 ? 0 : -s);
    v += out_offset;
    y[o] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
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
 * sees a constant layer index, so the compiler specialises it to that layer's sizes and offsets
 * (a run-time loop over k_layers costs a 16x16 network about 1.3 times the instructions).
 * k counts the entries (the scratch row, the last one writes the output), f the FULLY_CONNECTED
 * ones (k_layers): the same number in a model of FULLY_CONNECTED layers only. */
#define AOT_STEP(...)                                                                                 \
  {                                                                                                   \
    const struct aot_layer *layer = &k_layers[f];                                                     \
    int8_t *y = k + 1 == MODEL_AOT_LAYER_COUNT ? output : scratch[k % 2];                             \
    fully_connected(x, layer->inputs, layer->weights, layer->bias, layer->units, layer->input_offset, \
                    layer->output_offset, layer->multipliers, layer->shifts, layer->act_min,          \
                    layer->act_max, y);                                                               \
    x = y;                                                                                            \
    ++k;                                                                                              \
    ++f;                                                                                              \
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

/* The model: every layer in turn. Out of line, so the machine code and its measured figures
 * (docs/qemu.md) stayed those of the emitted engine it replaced; inlining it saves the call
 * (4 instructions and 8 B of stack on the neuron). */
__attribute__((noinline)) static void run_model(const int8_t *input, int8_t *output) {
  int8_t scratch[2][MODEL_AOT_MAX_UNITS];
  const int8_t *x = input;
  int k = 0;
#if MODEL_AOT_FC_COUNT > 0
  int f = 0;
#endif
  MODEL_AOT_LAYERS(AOT_STEP)
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
