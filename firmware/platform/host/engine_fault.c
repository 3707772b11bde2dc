/* A test double: an engine that always fails, so host tests can see the core report
 * ERR 7 (and keep answering) without a broken model. Linked only into
 * tinyml_device_fault, never into the board's or the real emulator's build. */
#include "engine.h"

int engine_init(void) { return -1; }

int engine_invoke(const int8_t *input, int8_t *output) {
  (void)input;
  (void)output;
  return -1;
}

const char *engine_name(void) { return "fault"; }

size_t engine_arena_used(void) { return 0; }

const char *engine_error(void) { return "AllocateTensors failed (fault-injection engine)"; }
