/* UART0 of the MPS2 AN386 (a CMSDK APB UART): polled bytes plus an interrupt-pending
 * wake-up, so the main loop can sleep (WFI) until a byte arrives or the transmitter frees
 * up. No interrupt handler runs: interrupts stay masked (PRIMASK) and only wake WFI. */
#ifndef QEMU_UART_H
#define QEMU_UART_H

#include <stdint.h>

/* Enables TX and RX at the given baud rate (QEMU ignores the rate; the board does not). */
void uart_init(uint32_t baud);

/* 1 when a received byte waits in the (one-byte) receive buffer. */
int uart_rx_ready(void);

/* Takes the received byte; only call after uart_rx_ready(). */
uint8_t uart_rx(void);

/* 1 when the transmitter cannot take another byte yet. */
int uart_tx_full(void);

/* Hands one byte to the transmitter; only call when !uart_tx_full(). */
void uart_tx(uint8_t byte);

/* Sends one byte, spinning while the transmitter is full. */
void uart_tx_blocking(uint8_t byte);

/* Sleeps until something may have changed: a byte arrived (when want_rx) or the
 * transmitter has room (when want_tx). Returns at once if that is already so. */
void uart_wait(int want_rx, int want_tx);

/* Stops the UART's interrupts, so a halted CPU can sleep for good (used after a fault). */
void uart_quiet(void);

/* Receive overruns seen (bytes lost because the receive buffer was not read in time). */
extern volatile uint32_t uart_rx_overruns;

#endif
