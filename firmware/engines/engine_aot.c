/* The ahead-of-time engine: TFLM's int8 reference arithmetic in plain C, run over what the pipeline
 * emits into model_aot.h: the model's ops in order (model_aot_run), each a kernel of
 * firmware/engines/aot/ with its constant tables, reading and writing the tensors where the build's
 * memory plan put them. The model's input and output are the caller's buffers; every other tensor
 * lives in one static arena, sized and shared out at build time (pipeline/int8/plan.py): nothing is
 * allocated, and nothing to initialise.
 *
 * The kernels and tables are static of this one translation unit, so the compiler sees every weight
 * and multiplier: a dense layer's sizes, output offset, clamp and per-tensor multiplier are constants
 * in its code (aot/fully_connected.h). With __ARM_FEATURE_DSP (the M4) the kernels that have one take
 * their DSP path (SMLAD, SXTB16, SSAT); elsewhere a portable one over the same tables. AOT_SIMD (0 or
 * 1) overrides the choice: the tests build the DSP path on the host with their own __smlad and
 * __sxtb16. Both compute TFLM's int32 arithmetic, with its wrap-around, so they agree to the bit. */
#include <string.h>

#include "engine.h"

#include "model_aot.h"

/* A model the AOT engine cannot run: model_aot.h's own #error has said why, and that stays the
 * build's one error (nothing below compiles without the tables). */
#ifndef MODEL_AOT_UNSUPPORTED

#if !defined(MODEL_AOT_FORMAT) || MODEL_AOT_FORMAT != 6
#error "model_aot.h has another table layout than this engine reads: emit it again (python -m pipeline.build)"
#endif

static const char *g_error = "no error";

/* The tensors between the model's input and its output, where the plan put them. */
#if MODEL_AOT_ARENA_BYTES > 0
static int8_t g_arena[MODEL_AOT_ARENA_BYTES] __attribute__((aligned(8)));
#define AOT_ARENA g_arena
#else
#define AOT_ARENA NULL
#endif

/* The model, out of line, so its machine code stays one function to read (and measure). */
__attribute__((noinline)) static void run_model(const int8_t *input, int8_t *output) {
  model_aot_run(input, output, AOT_ARENA);
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

size_t engine_arena_used(void) { return MODEL_AOT_ARENA_BYTES; }

const char *engine_error(void) { return g_error; }

#endif /* MODEL_AOT_UNSUPPORTED */
