/* The ahead-of-time engine: TFLM's int8 FULLY_CONNECTED reference arithmetic in plain C,
 * run over the layers the pipeline emits into model_aot.h (tables and their order, nothing
 * else). Nothing to allocate, so it has no arena and nothing to initialise.
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

/* In call order: layer k reads layer k - 1's output, layer 0 the model's input. */
static const struct aot_layer k_layers[MODEL_AOT_LAYER_COUNT] = {MODEL_AOT_LAYERS(AOT_LAYER)};

static const char *g_error = "no error";

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

/* One step of the chain per MODEL_AOT_LAYERS entry, unrolled by the preprocessor: each call
 * sees a constant layer index, so the compiler specialises it to that layer's sizes and offsets
 * (a run-time loop over k_layers costs a 16x16 network about 1.3 times the instructions). */
#define AOT_STEP(...)                                                                                 \
  {                                                                                                   \
    const struct aot_layer *layer = &k_layers[k];                                                     \
    int8_t *y = k + 1 == MODEL_AOT_LAYER_COUNT ? output : scratch[k % 2];                             \
    fully_connected(x, layer->inputs, layer->weights, layer->bias, layer->units, layer->input_offset, \
                    layer->output_offset, layer->multipliers, layer->shifts, layer->act_min,          \
                    layer->act_max, y);                                                               \
    x = y;                                                                                            \
    ++k;                                                                                              \
  }

/* The model: every layer in turn. Out of line, so the machine code and its measured figures
 * (docs/qemu.md) stayed those of the emitted engine it replaced; inlining it saves the call
 * (4 instructions and 8 B of stack on the neuron). */
__attribute__((noinline)) static void run_model(const int8_t *input, int8_t *output) {
  int8_t scratch[2][MODEL_AOT_MAX_UNITS];
  const int8_t *x = input;
  int k = 0;
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
