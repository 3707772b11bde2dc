/* The Arduino platform layer (Nano 33 BLE, mbed core): USB serial in, protocol v1 out.
 * Everything else is the portable core (core/app.h) and the engine linked by the
 * PlatformIO env (engines/engine_tflm.cpp or engines/engine_aot.c).
 *
 * The board serves queries whether or not a terminal was attached at boot: setup()
 * never waits for Serial. On the mbed core, Serial is USB CDC: the baud rate is
 * ignored, and the core drops writes while the host has not asserted DTR (pyserial and
 * PlatformIO's monitor assert it when they open the port), so a response to a request
 * made by a host that then closes the port is dropped, never blocking the loop. */
#include <Arduino.h>

#include "app.h"

namespace {

app_t g_app;

void serial_write(void *ctx, const uint8_t *bytes, size_t n) {
  (void)ctx;
  Serial.write(bytes, n);
}

uint32_t clock_micros(void) { return (uint32_t)micros(); }

}  // namespace

void setup() {
  Serial.begin(115200); /* no `while (!Serial)`: boot must not depend on a terminal */
  app_init(&g_app, serial_write, nullptr, clock_micros);
}

void loop() {
  uint8_t chunk[64];
  size_t n = 0;
  while (n < sizeof(chunk) && Serial.available() > 0) {
    int c = Serial.read();
    if (c < 0) break;
    chunk[n++] = (uint8_t)c;
  }
  if (n > 0) app_feed(&g_app, chunk, n);
}
