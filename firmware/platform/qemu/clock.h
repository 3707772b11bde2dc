/* A microsecond clock from CMSDK APB timer 0 (25 MHz). Under qemu -icount shift=0 the
 * emulated clocks advance 1 ns per executed instruction, so 1 us = 1000 instructions and
 * timings become exact functions of the code that ran. */
#ifndef QEMU_CLOCK_H
#define QEMU_CLOCK_H

#include <stdint.h>

void clock_init(void);

/* Free-running microseconds since clock_init, wrapping at 2^32 (like Arduino's micros()).
 * The 32-bit timer wraps every 171.8 s: call at least that often (the main loop does)
 * for the count to stay continuous; differences over shorter spans are always right. */
uint32_t clock_micros(void);

/* Raw timer ticks elapsed (25 per microsecond), wrapping at 2^32. */
uint32_t clock_ticks(void);

#endif
