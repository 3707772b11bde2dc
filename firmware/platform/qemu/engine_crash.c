/* A test double: an engine whose invoke crashes the CPU, so tests can see the fault
 * reporter's FAULT line (startup.c). Linked only into tinyml_qemu_crash.
 *   q with an even first code: executes an undefined instruction (UsageFault UNDEFINSTR)
 *   q with an odd first code:  loads from an address nothing answers (precise BusFault) */
#include "engine.h"

#define NOWHERE 0xF0000000u /* not decoded by the AN386's bus: a load there is a bus error */

int engine_init(void) { return 0; }

int engine_invoke(const int8_t *input, int8_t *output) {
  if (input[0] & 1) {
    output[0] = (int8_t)*(volatile const uint32_t *)NOWHERE;
  } else {
    __asm__ __volatile__("udf #0");
  }
  return 0;
}

const char *engine_name(void) { return "crash"; }

size_t engine_arena_used(void) { return 0; }

const char *engine_error(void) { return "no error"; }
