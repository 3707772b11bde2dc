/* QEMU platform layer (qemu-system-arm -M mps2-an386): the device on UART0.
 *
 * Received bytes go to app_feed one at a time; answers (written by the core in pieces of
 * at most APP_OUT_CHUNK bytes, so an answer of any length fits) go into a transmit queue
 * that the loop drains whenever the UART has room, and a write waits for the UART while
 * the queue is full. A byte is only taken from the UART while the queue has room for a
 * piece, so a client that writes a flood before reading anything never loses an answer:
 * when the queue fills, the loop stops reading, the emulator stops delivering (its UART
 * has a one-byte receive buffer and QEMU only hands it a byte when that buffer is empty)
 * and the host pty holds the rest. The CPU sleeps (WFI) whenever there is nothing to do. */
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "clock.h"
#include "platform.h"
#include "uart.h"

#define BAUD 115200u
#define TXQ_SIZE 4096u /* a power of two */

#if (TXQ_SIZE & (TXQ_SIZE - 1u)) != 0 || TXQ_SIZE < APP_OUT_CHUNK
#error "TXQ_SIZE must be a power of two holding at least one piece of an answer"
#endif

static app_t g_app;
static uint8_t g_txq[TXQ_SIZE];
static uint32_t g_txq_head; /* bytes ever queued (free-running) */
static uint32_t g_txq_tail; /* bytes ever sent */

static uint32_t txq_used(void) { return g_txq_head - g_txq_tail; }

/* Moves queued bytes to the UART while it takes them. */
static void txq_pump(void) {
  while (g_txq_tail != g_txq_head && !uart_tx_full()) {
    uart_tx(g_txq[g_txq_tail & (TXQ_SIZE - 1u)]);
    g_txq_tail++;
  }
}

/* app_write_fn: queues all n bytes, waiting for the UART if the queue is full. */
static void txq_write(void *ctx, const uint8_t *bytes, size_t n) {
  size_t i;
  (void)ctx;
  for (i = 0; i < n; i++) {
    while (txq_used() == TXQ_SIZE) {
      txq_pump();
      if (txq_used() == TXQ_SIZE) uart_wait(0, 1);
    }
    g_txq[g_txq_head & (TXQ_SIZE - 1u)] = bytes[i];
    g_txq_head++;
  }
  txq_pump();
}

void platform_flush_output(void) {
  uint32_t left = txq_used() <= TXQ_SIZE ? txq_used() : TXQ_SIZE;
  while (left--) {
    uart_tx_blocking(g_txq[g_txq_tail & (TXQ_SIZE - 1u)]);
    g_txq_tail++;
  }
}

int main(void) {
  clock_init();
  uart_init(BAUD);
  app_init(&g_app, txq_write, NULL, clock_micros);

  for (;;) {
    int room = TXQ_SIZE - txq_used() >= APP_OUT_CHUNK;
    txq_pump();
    if (room && uart_rx_ready()) {
      uint8_t byte = uart_rx();
      app_feed(&g_app, &byte, 1);
      continue;
    }
    (void)clock_micros(); /* keeps the clock's wrap count current while idle */
    uart_wait(room, txq_used() != 0);
  }
}
