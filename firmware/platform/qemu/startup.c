/* Start-up and fault reporting for the Cortex-M4 of the MPS2 AN386 (qemu -M mps2-an386).
 *
 * Reset: enable the FPU (the firmware is built with -mfloat-abi=hard, so the first float
 * instruction would fault otherwise), mask interrupts (nothing here takes one: the UART's
 * only wake WFI), copy .data from flash, zero .bss, run constructors, call main().
 * Any fault or unexpected exception prints one line on UART0, then the CPU halts, e.g.
 *   FAULT hardfault pc=0x00001a12 lr=0x00001523 xpsr=0x41070000 cfsr=0x00010000
 *   hfsr=0x40000000 mmfar=0x00000000 bfar=0x00000000 exc_return=0xffffffe9 cause=undefinstr
 * (one line). pc is the faulting instruction; cause names the CFSR bits set. Interrupts
 * are masked, so MemManage, BusFault and UsageFault all escalate to HardFault (HFSR
 * FORCED); CFSR still says which. */
#include <stddef.h>
#include <stdint.h>

#include "an386.h"
#include "platform.h"
#include "uart.h"

/* From the link script (mps2_an386.ld). */
extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[], __stack_limit[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void fault_report(const uint32_t *frame, uint32_t exc_return);

#define SYSTEM_VECTORS 15 /* exceptions 1..15 (entry 0 is the initial stack pointer) */
#define IRQ_VECTORS 32    /* the AN386 wires 32 external interrupts */

typedef struct {
  void *initial_sp;
  void (*handler[SYSTEM_VECTORS + IRQ_VECTORS])(void);
} vector_table_t;

#define F Fault_Handler
__attribute__((section(".vectors"), used)) const vector_table_t g_vectors = {
  __stack_top,
  {
    Reset_Handler, /* 1 reset */
    F, F, F, F, F, /* 2 NMI, 3 HardFault, 4 MemManage, 5 BusFault, 6 UsageFault */
    0, 0, 0, 0,    /* 7-10 reserved */
    F, F, 0, F, F, /* 11 SVCall, 12 DebugMonitor, 13 reserved, 14 PendSV, 15 SysTick */
    F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, /* IRQ 0-15 */
    F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, /* IRQ 16-31 */
  },
};
#undef F

/* Default: nothing queued. The device main loop overrides it to push out its queued output
 * before the fault line, so answers sent before the fault are not lost. */
__attribute__((weak)) void platform_flush_output(void) {}

void Reset_Handler(void) {
  uint32_t *src;
  uint32_t *dst;
  void (**ctor)(void);

  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11 (the FPU): full access */
  __asm__ __volatile__("dsb\n\tisb\n\tcpsid i" ::: "memory");
  SCB_VTOR = (uint32_t)(uintptr_t)&g_vectors;

  for (src = __data_load, dst = __data_start; dst < __data_end;) *dst++ = *src++;
  for (dst = __bss_start; dst < __bss_end;) *dst++ = 0;
  for (ctor = __init_array_start; ctor < __init_array_end; ctor++) (*ctor)();

  (void)main();
  for (;;) __asm__ __volatile__("wfi");
}

/* Hands fault_report the stacked exception frame (r0-r3, r12, lr, pc, xpsr) of whichever
 * stack was in use (bit 2 of EXC_RETURN in lr), and EXC_RETURN itself. */
__attribute__((naked)) void Fault_Handler(void) {
  __asm__ __volatile__(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "mov r1, lr\n\t"
      "b fault_report\n\t");
}

static void put_str(const char *s) {
  while (*s) uart_tx_blocking((uint8_t)*s++);
}

static void put_hex(const char *key, uint32_t v) {
  int shift;
  put_str(key);
  put_str("=0x");
  for (shift = 28; shift >= 0; shift -= 4) uart_tx_blocking((uint8_t)"0123456789abcdef"[(v >> shift) & 0xFu]);
}

static const char *exception_name(uint32_t n) {
  switch (n) {
    case 2: return "nmi";
    case 3: return "hardfault";
    case 4: return "memmanage";
    case 5: return "busfault";
    case 6: return "usagefault";
    case 11: return "svcall";
    case 12: return "debugmon";
    case 14: return "pendsv";
    case 15: return "systick";
    default: return n >= 16 ? "irq" : "exception";
  }
}

/* CFSR bit names (Armv7-M ARM B3.2.15); HFSR's VECTTBL and FORCED at bits 1 and 30. */
static const struct {
  uint32_t bit;
  const char *name;
} k_causes[] = {
  {1u << 0, "iaccviol"},     {1u << 1, "daccviol"},   {1u << 3, "munstkerr"},
  {1u << 4, "mstkerr"},      {1u << 5, "mlsperr"},    {1u << 8, "ibuserr"},
  {1u << 9, "preciserr"},    {1u << 10, "impreciserr"}, {1u << 11, "unstkerr"},
  {1u << 12, "stkerr"},      {1u << 13, "lsperr"},    {1u << 16, "undefinstr"},
  {1u << 17, "invstate"},    {1u << 18, "invpc"},     {1u << 19, "nocp"},
  {1u << 24, "unaligned"},   {1u << 25, "divbyzero"},
};

void fault_report(const uint32_t *frame, uint32_t exc_return) {
  uint32_t ipsr;
  uint32_t cfsr = SCB_CFSR;
  uint32_t hfsr = SCB_HFSR;
  uint32_t at = (uint32_t)(uintptr_t)frame;
  const uint32_t stacking_errors = (1u << 4) | (1u << 12); /* MSTKERR, STKERR */
  int any = 0;
  size_t i;

  __asm__ __volatile__("mrs %0, ipsr" : "=r"(ipsr));
  ipsr &= 0x1FFu;
  platform_flush_output();
  put_str("FAULT ");
  put_str(exception_name(ipsr));
  if (ipsr >= 16) put_hex("", ipsr - 16);
  /* The frame is only trustworthy if stacking worked and it lies in RAM. */
  if (!(cfsr & stacking_errors) && at >= (uint32_t)(uintptr_t)__stack_limit &&
      at + 32u <= (uint32_t)(uintptr_t)__stack_top) {
    put_hex(" pc", frame[6]);
    put_hex(" lr", frame[5]);
    put_hex(" xpsr", frame[7]);
  } else {
    put_hex(" sp", at);
  }
  put_hex(" cfsr", cfsr);
  put_hex(" hfsr", hfsr);
  put_hex(" mmfar", SCB_MMFAR);
  put_hex(" bfar", SCB_BFAR);
  put_hex(" exc_return", exc_return);
  put_str(" cause=");
  for (i = 0; i < sizeof k_causes / sizeof k_causes[0]; i++) {
    if (cfsr & k_causes[i].bit) {
      if (any) put_str("+");
      put_str(k_causes[i].name);
      any = 1;
    }
  }
  if (hfsr & (1u << 1)) {
    put_str(any ? "+vecttbl" : "vecttbl");
    any = 1;
  }
  if (!any) put_str("none");
  put_str("\r\n");

  /* Halt: nothing more is answered. With the UART's interrupts off WFI sleeps for good,
   * so the emulator idles instead of spinning. */
  uart_quiet();
  for (;;) __asm__ __volatile__("wfi");
}
