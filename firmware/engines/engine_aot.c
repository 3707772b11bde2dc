/* The ahead-of-time engine: the pipeline's emitted plain-C arithmetic (model_aot.c).
 * Nothing to allocate, so it has no arena and nothing to initialise. */
#include "engine.h"

#include "model_aot.h"

static const char *g_error = "no error";

int engine_init(void) { return 0; }

int engine_invoke(const int8_t *input, int8_t *output) {
  if (input == NULL || output == NULL) {
    g_error = "invoke: null buffer";
    return -1;
  }
  model_aot_invoke(input, output);
  return 0;
}

const char *engine_name(void) { return "aot"; }

size_t engine_arena_used(void) { return 0; }

const char *engine_error(void) { return g_error; }
