/* Microsecond clock on CMSDK APB timer 0. See clock.h. */
#include "clock.h"

#include "an386.h"

#define TICKS_PER_US (AN386_SYSCLK_HZ / 1000000u)

static uint32_t g_last_value; /* timer value at the previous reading */
static uint32_t g_ticks;      /* ticks elapsed, wrapping */
static uint32_t g_micros;     /* microseconds elapsed, wrapping */
static uint32_t g_rest;       /* ticks not yet counted in g_micros (< TICKS_PER_US) */

void clock_init(void) {
  TIMER0->ctrl = 0;
  TIMER0->reload = 0xFFFFFFFFu;
  TIMER0->value = 0xFFFFFFFFu;
  TIMER0->ctrl = TIMER_CTRL_EN; /* no interrupt: it is read, never waited for */
  g_last_value = TIMER0->value;
  g_ticks = g_micros = g_rest = 0;
}

/* Folds the ticks since the previous reading into the counters. */
static void advance(void) {
  uint32_t now = TIMER0->value;
  uint32_t delta = g_last_value - now; /* a down counter; wraps modulo 2^32 */
  uint32_t rest;
  g_last_value = now;
  g_ticks += delta;
  rest = delta % TICKS_PER_US + g_rest; /* < 2 * TICKS_PER_US: no overflow */
  g_micros += delta / TICKS_PER_US + rest / TICKS_PER_US;
  g_rest = rest % TICKS_PER_US;
}

uint32_t clock_micros(void) {
  advance();
  return g_micros;
}

uint32_t clock_ticks(void) {
  advance();
  return g_ticks;
}
