/* libFuzzer harness for the portable core: any byte sequence must be answered with
 * exactly one CRLF-terminated line per request line, and nothing else.
 *
 *   cmake -S firmware -B build/fuzz -DFUZZ=ON -DCMAKE_C_COMPILER=clang
 *   cmake --build build/fuzz --target fuzz_protocol && build/fuzz/fuzz_protocol -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  size_t lines;      /* complete response lines seen */
  int in_line;       /* bytes of an unfinished response line seen */
  int saw_cr;        /* the previous response byte was CR */
} sink_t;

static uint32_t g_clock;
static uint32_t fake_micros(void) { return g_clock += 7u; }

static void sink_write(void *ctx, const uint8_t *bytes, size_t n) {
  sink_t *s = (sink_t *)ctx;
  size_t i;
  if (n == 0 || n > APP_RESPONSE_MAX) abort();
  for (i = 0; i < n; i++) {
    uint8_t c = bytes[i];
    if (s->saw_cr) {
      if (c != '\n') abort(); /* CR only as part of the final CRLF */
      s->saw_cr = 0;
      s->lines++;
      s->in_line = 0;
      continue;
    }
    if (c == '\r') {
      s->saw_cr = 1;
    } else if (c == '\n' || c < 0x20 || c > 0x7e) {
      abort(); /* responses are printable ASCII lines */
    } else {
      s->in_line = 1;
    }
  }
  if (s->saw_cr || s->in_line) abort(); /* each write is whole lines */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static app_t app;
  sink_t sink;
  size_t endings = 0;
  size_t i;
  int after_cr = 0;
  memset(&sink, 0, sizeof sink);
  app_init(&app, sink_write, &sink, fake_micros);

  /* Feed in uneven chunks so the line assembler's state crosses call boundaries. */
  for (i = 0; i < size;) {
    size_t chunk = (size_t)(data[i] % 17u) + 1u;
    if (chunk > size - i) chunk = size - i;
    app_feed(&app, data + i, chunk);
    i += chunk;
  }

  for (i = 0; i < size; i++) { /* independent count of line endings */
    if (data[i] == '\n' && after_cr) {
      after_cr = 0;
      continue;
    }
    after_cr = data[i] == '\r';
    if (data[i] == '\r' || data[i] == '\n') endings++;
  }
  if (sink.lines != endings) abort();
  return 0;
}
