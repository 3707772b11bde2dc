/* The few hardware facts the QEMU platform layer needs: ARM's MPS2 board with the AN386
 * FPGA image (a Cortex-M4 with FPU), as emulated by qemu-system-arm -M mps2-an386.
 *
 * From the AN385/AN386 application notes and the Armv7-M Architecture Reference Manual:
 *   0x00000000  ZBT SSRAM1, 4 MB: code (the vector table sits at its start, VTOR = 0)
 *   0x20000000  ZBT SSRAM2/3, 4 MB: data
 *   0x40000000  CMSDK APB timer 0 (32-bit down counter on the 25 MHz peripheral clock)
 *   0x40004000  CMSDK APB UART 0; NVIC IRQ 0 = its receive, IRQ 1 = its transmit interrupt
 * The link script (mps2_an386.ld) uses only the Arduino Nano 33 BLE's sizes of these
 * memories (1 MB flash, 256 KB RAM), so anything that would not fit the board fails to link. */
#ifndef AN386_H
#define AN386_H

#include <stdint.h>

#define AN386_SYSCLK_HZ 25000000u /* system and APB peripheral clock */

/* ---- CMSDK APB UART -------------------------------------------------------------- */
typedef struct {
  volatile uint32_t data;      /* 0x00: read = received byte, write = byte to send */
  volatile uint32_t state;     /* 0x04: TX full, RX full, TX overrun, RX overrun (write 1 clears overruns) */
  volatile uint32_t ctrl;      /* 0x08: enables */
  volatile uint32_t intstatus; /* 0x0C: read = interrupt status, write = INTCLEAR (1 clears) */
  volatile uint32_t bauddiv;   /* 0x10: clock / baud rate, at least 16 */
} cmsdk_uart_t;

#define UART0 ((cmsdk_uart_t *)0x40004000u)

#define UART_STATE_TX_FULL (1u << 0)
#define UART_STATE_RX_FULL (1u << 1)
#define UART_STATE_TX_OVERRUN (1u << 2)
#define UART_STATE_RX_OVERRUN (1u << 3)

#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_CTRL_TX_IRQ_EN (1u << 2)
#define UART_CTRL_RX_IRQ_EN (1u << 3)

#define UART_INT_TX (1u << 0)
#define UART_INT_RX (1u << 1)
#define UART_INT_TX_OVERRUN (1u << 2)
#define UART_INT_RX_OVERRUN (1u << 3)

#define UART0_RX_IRQ 0u
#define UART0_TX_IRQ 1u

/* ---- CMSDK APB timer --------------------------------------------------------------- */
typedef struct {
  volatile uint32_t ctrl;      /* 0x00: bit 0 enable, bit 3 interrupt enable */
  volatile uint32_t value;     /* 0x04: current count, counts down to 0, then reloads */
  volatile uint32_t reload;    /* 0x08 */
  volatile uint32_t intstatus; /* 0x0C */
} cmsdk_timer_t;

#define TIMER0 ((cmsdk_timer_t *)0x40000000u)
#define TIMER_CTRL_EN (1u << 0)

/* ---- Cortex-M4 system control block and NVIC (Armv7-M ARM, B3.2 and B3.4) --------- */
#define REG32(addr) (*(volatile uint32_t *)(addr))

#define SCB_ICSR REG32(0xE000ED04u)
#define SCB_VTOR REG32(0xE000ED08u)
#define SCB_SHCSR REG32(0xE000ED24u)
#define SCB_CFSR REG32(0xE000ED28u)  /* MemManage, BusFault and UsageFault status */
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define SCB_CPACR REG32(0xE000ED88u) /* coprocessor access: CP10/CP11 = the FPU */

#define NVIC_ISER0 REG32(0xE000E100u)
#define NVIC_ICER0 REG32(0xE000E180u)
#define NVIC_ICPR0 REG32(0xE000E280u)

#endif
