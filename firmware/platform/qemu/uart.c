/* CMSDK APB UART driver for UART0 of the MPS2 AN386. See uart.h. */
#include "uart.h"

#include "an386.h"

volatile uint32_t uart_rx_overruns = 0;

#define UART0_IRQ_BITS ((1u << UART0_RX_IRQ) | (1u << UART0_TX_IRQ))

void uart_init(uint32_t baud) {
  uint32_t div = baud ? AN386_SYSCLK_HZ / baud : 16u;
  if (div < 16u) div = 16u; /* the UART needs at least 16 clocks per bit */
  UART0->ctrl = 0;
  UART0->bauddiv = div;
  UART0->state = UART_STATE_TX_OVERRUN | UART_STATE_RX_OVERRUN; /* clear stale overruns */
  UART0->intstatus = UART_INT_TX | UART_INT_RX | UART_INT_TX_OVERRUN | UART_INT_RX_OVERRUN;
  UART0->ctrl = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_TX_IRQ_EN | UART_CTRL_RX_IRQ_EN;
  /* Enabled in the NVIC so a pending UART interrupt wakes WFI; PRIMASK (set at reset by
   * startup.c) keeps the CPU from ever taking it. */
  NVIC_ICPR0 = UART0_IRQ_BITS;
  NVIC_ISER0 = UART0_IRQ_BITS;
}

int uart_rx_ready(void) {
  uint32_t state = UART0->state;
  if (state & UART_STATE_RX_OVERRUN) { /* a byte was lost: count it, clear the flag */
    uart_rx_overruns++;
    UART0->state = UART_STATE_RX_OVERRUN;
  }
  return (state & UART_STATE_RX_FULL) != 0;
}

uint8_t uart_rx(void) { return (uint8_t)UART0->data; }

int uart_tx_full(void) { return (UART0->state & UART_STATE_TX_FULL) != 0; }

void uart_tx(uint8_t byte) { UART0->data = byte; }

void uart_tx_blocking(uint8_t byte) {
  while (uart_tx_full()) {
  }
  uart_tx(byte);
}

void uart_wait(int want_rx, int want_tx) {
  /* Clear the old events first, then look again: an event after this look sets the
   * interrupt pending again, and WFI returns at once when an interrupt is pending. */
  UART0->intstatus = UART_INT_TX | UART_INT_RX;
  NVIC_ICPR0 = UART0_IRQ_BITS;
  if (want_rx && uart_rx_ready()) return;
  if (want_tx && !uart_tx_full()) return;
  __asm__ __volatile__("dsb\n\twfi" ::: "memory");
}

void uart_quiet(void) {
  UART0->ctrl &= ~(UART_CTRL_TX_IRQ_EN | UART_CTRL_RX_IRQ_EN);
  NVIC_ICER0 = UART0_IRQ_BITS;
  NVIC_ICPR0 = UART0_IRQ_BITS;
}
