/* A measurement double: an engine that computes nothing. Linked only into
 * tinyml_qemu_null, the baseline pipeline/footprint.py subtracts from the real image:
 * its bench loop costs what any engine_invoke call costs before the engine does work,
 * and its size is that of the device without an inference engine. */
#include "engine.h"

int engine_init(void) { return 0; }

int engine_invoke(const int8_t *input, int8_t *output) {
  (void)input;
  (void)output;
  return 0;
}

const char *engine_name(void) { return "null"; }

size_t engine_arena_used(void) { return 0; }

const char *engine_error(void) { return "no error"; }
