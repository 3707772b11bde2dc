/* The stack measurement image (pipeline/footprint.py): how many bytes of stack the
 * engine's engine_init and engine_invoke use, measured on the Cortex-M4 by painting.
 *
 * Before each call, the free stack below the caller's stack pointer is filled with a
 * pattern; after it, the deepest word no longer holding the pattern marks the high-water
 * mark. engine_invoke is run from every int8 code on all inputs (every 16th for a wide model, see
 * MEASURE_STEP) and the worst case kept.
 * The result is one line on UART0, then the CPU halts:
 *   measure stack_init=0 stack_invoke=40 painted=8192 */
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "model_info.h"
#include "uart.h"

#define PATTERN 0xA5C3E1F7u
#define PAINT_BYTES 8192u
/* Which input codes to start from: every one for a narrow model; every 16th (and 127) for one of more
 * than 64 inputs, whose convolutions take millions of instructions an inference (the kernels' stack
 * depends on the shapes, not on the values: the spread is a check, not the measure). */
#define MEASURE_STEP (MODEL_INPUT_COUNT > 64 ? 16 : 1)

extern uint32_t __stack_limit[];

static int8_t g_input[MODEL_INPUT_COUNT];
static int8_t g_output[MODEL_OUTPUT_COUNT];
static uint32_t g_painted;

/* Paints [sp - PAINT_BYTES, sp) (clipped to the stack's bottom); returns its low end. */
#define PAINT_BELOW_SP(sp, lo)                                                          \
  do {                                                                                  \
    volatile uint32_t *p_;                                                              \
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));                                      \
    lo = sp - PAINT_BYTES;                                                              \
    if (lo < (uint32_t)(uintptr_t)__stack_limit) lo = (uint32_t)(uintptr_t)__stack_limit; \
    for (p_ = (volatile uint32_t *)(uintptr_t)lo; (uint32_t)(uintptr_t)p_ < sp; p_++) *p_ = PATTERN; \
    g_painted = sp - lo;                                                                \
  } while (0)

/* Bytes below sp that no longer hold the pattern, from the deepest one up. */
static uint32_t used_below(uint32_t sp, uint32_t lo) {
  volatile const uint32_t *p = (volatile const uint32_t *)(uintptr_t)lo;
  while ((uint32_t)(uintptr_t)p < sp && *p == PATTERN) p++;
  return sp - (uint32_t)(uintptr_t)p;
}

/* The stack pointer is constant in these bodies (no alloca, no stacked arguments), so
 * the sp read before painting is the one the engine's call starts from. */
static __attribute__((noinline)) uint32_t stack_of_init(int *rc) {
  uint32_t sp;
  uint32_t lo;
  PAINT_BELOW_SP(sp, lo);
  *rc = engine_init();
  return used_below(sp, lo);
}

static __attribute__((noinline)) uint32_t stack_of_invoke(int *rc) {
  uint32_t sp;
  uint32_t lo;
  PAINT_BELOW_SP(sp, lo);
  *rc = engine_invoke(g_input, g_output);
  return used_below(sp, lo);
}

static void put_str(const char *s) {
  while (*s) uart_tx_blocking((uint8_t)*s++);
}

static void put_uint(const char *key, uint32_t v) {
  char digits[10];
  int n = 0;
  put_str(key);
  do {
    digits[n++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  while (n > 0) uart_tx_blocking((uint8_t)digits[--n]);
}

int main(void) {
  uint32_t init_bytes;
  uint32_t invoke_bytes = 0;
  int rc = 0;
  int failed = 0;
  int code;
  size_t i;

  uart_init(115200u);
  init_bytes = stack_of_init(&rc);
  failed |= rc != 0;
  for (code = -128; code <= 127; code = code + MEASURE_STEP > 127 && code < 127 ? 127 : code + MEASURE_STEP) {
    uint32_t used;
    for (i = 0; i < MODEL_INPUT_COUNT; i++) g_input[i] = (int8_t)(code + (int)i * 37); /* wraps */
    used = stack_of_invoke(&rc);
    failed |= rc != 0;
    if (used > invoke_bytes) invoke_bytes = used;
  }

  put_str("measure engine=");
  put_str(engine_name());
  put_uint(" stack_init=", init_bytes);
  put_uint(" stack_invoke=", invoke_bytes);
  put_uint(" painted=", g_painted);
  put_uint(" failed=", (uint32_t)failed);
  put_str("\r\n");
  uart_quiet(); /* so WFI sleeps for good */
  for (;;) __asm__ __volatile__("wfi");
}
