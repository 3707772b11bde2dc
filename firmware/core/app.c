/* Serial protocol v1 dispatcher: see app.h and docs/protocol.md. */
#include "app.h"

#include <string.h>

#include "engine.h"

#define BENCH_MAX 1000000L
#define ENGINE_ERROR_MAX 96 /* characters of engine_error() quoted in ERR 7 */

static const char k_help[] = "help: X1 [X2 ...] | q C1 [C2 ...] | id | bench N | help";
static const char k_too_long[] = "ERR 2 line too long (max 128 bytes)\r\n";

void app_init(app_t *app, app_write_fn write, void *ctx, app_clock_fn micros) {
  if (app == NULL) return;
  memset(app, 0, sizeof *app);
  proto_line_init(&app->line);
  app->write = write;
  app->ctx = ctx;
  app->micros = micros;
  app->engine_ready = engine_init() == 0;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int field_is(const char *f, size_t n, const char *word) {
  size_t w = strlen(word);
  return n == w && memcmp(f, word, n) == 0;
}

static void put_error(proto_out_t *o, int code, const char *reason) {
  proto_put_str(o, "ERR ");
  proto_put_int(o, code);
  proto_put_char(o, ' ');
  proto_put_str(o, reason);
}

static void put_field_error(proto_out_t *o, int code, const char *reason, size_t field) {
  put_error(o, code, reason);
  proto_put_uint(o, (unsigned long)field);
}

static void put_count_error(proto_out_t *o, const char *what, size_t got) {
  put_error(o, 4, "expected ");
  proto_put_uint(o, (unsigned long)MODEL_INPUT_COUNT);
  proto_put_char(o, ' ');
  proto_put_str(o, what);
  proto_put_str(o, ", got ");
  proto_put_uint(o, (unsigned long)got);
}

static void put_engine_error(proto_out_t *o) {
  const char *why = engine_error();
  put_error(o, 7, "engine: ");
  if (why == NULL || why[0] == '\0') why = "unknown failure";
  proto_put_text(o, why, ENGINE_ERROR_MAX);
}

/* 0 when the engine is ready; otherwise writes ERR 7. */
static int ensure_engine(app_t *app, proto_out_t *o) {
  if (!app->engine_ready) app->engine_ready = engine_init() == 0;
  if (app->engine_ready) return 0;
  put_engine_error(o);
  return -1;
}

/* clamp(round_half_away_from_zero(x / scale) + zp, -128, 127), with x / scale computed in
 * float as TFLM's quantize kernel does. */
static int8_t quantize_input(float x) {
  float q = x / MODEL_INPUT_SCALE;
  long r;
  float frac;
  if (!(q > -1000.0f)) return -128; /* far below the int8 range (NaN cannot get here) */
  if (q > 1000.0f) return 127;
  r = (long)q;            /* toward zero */
  frac = q - (float)r;    /* exact: the dropped fraction of q */
  if (frac >= 0.5f) {
    r++;
  } else if (frac <= -0.5f) {
    r--;
  }
  r += MODEL_INPUT_ZERO_POINT;
  if (r < -128) r = -128;
  if (r > 127) r = 127;
  return (int8_t)r;
}

static void reply_values(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  size_t count = 0;
  int clipped = 0;
  size_t i;
  while (proto_next_field(&pos, end, &field, &flen)) {
    float x;
    count++;
    if (proto_parse_float(field, flen, &x) != 0) {
      put_field_error(o, 3, "bad number at field ", count);
      return;
    }
    if (x < MODEL_INPUT_MIN || x > MODEL_INPUT_MAX) clipped = 1;
    if (count <= MODEL_INPUT_COUNT) app->input[count - 1] = quantize_input(x);
  }
  if (count != MODEL_INPUT_COUNT) {
    put_count_error(o, "values", count);
    return;
  }
  if (ensure_engine(app, o) != 0) return;
  if (engine_invoke(app->input, app->output) != 0) {
    put_engine_error(o);
    return;
  }
  for (i = 0; i < MODEL_OUTPUT_COUNT; i++) {
    if (i > 0) proto_put_char(o, ' ');
    proto_put_scaled(o, (int32_t)app->output[i] - (int32_t)(MODEL_OUTPUT_ZERO_POINT),
                     MODEL_OUTPUT_SCALE);
  }
  if (clipped) proto_put_str(o, " clipped");
}

static void reply_codes(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  size_t count = 0;
  size_t i;
  while (proto_next_field(&pos, end, &field, &flen)) {
    long v;
    count++;
    if (proto_parse_int(field, flen, &v) != 0 || v < -128 || v > 127) {
      put_field_error(o, 5, "bad code at field ", count);
      return;
    }
    if (count <= MODEL_INPUT_COUNT) app->input[count - 1] = (int8_t)v;
  }
  if (count != MODEL_INPUT_COUNT) {
    put_count_error(o, "codes", count);
    return;
  }
  if (ensure_engine(app, o) != 0) return;
  if (engine_invoke(app->input, app->output) != 0) {
    put_engine_error(o);
    return;
  }
  proto_put_char(o, 'q');
  for (i = 0; i < MODEL_OUTPUT_COUNT; i++) {
    proto_put_char(o, ' ');
    proto_put_int(o, app->output[i]);
  }
}

static void reply_id(app_t *app, proto_out_t *o) {
  if (!app->engine_ready) app->engine_ready = engine_init() == 0; /* arena= needs init */
  proto_put_str(o, "id proto=");
  proto_put_int(o, PROTO_VERSION);
  proto_put_str(o, " model=");
  proto_put_text(o, MODEL_ID, 12);
  proto_put_str(o, " engine=");
  proto_put_text(o, engine_name(), 16);
  proto_put_str(o, " inputs=");
  proto_put_uint(o, (unsigned long)MODEL_INPUT_COUNT);
  proto_put_str(o, " outputs=");
  proto_put_uint(o, (unsigned long)MODEL_OUTPUT_COUNT);
  proto_put_str(o, " in_scale=");
  proto_put_float_short(o, MODEL_INPUT_SCALE);
  proto_put_str(o, " in_zp=");
  proto_put_int(o, MODEL_INPUT_ZERO_POINT);
  proto_put_str(o, " out_scale=");
  proto_put_float_short(o, MODEL_OUTPUT_SCALE);
  proto_put_str(o, " out_zp=");
  proto_put_int(o, MODEL_OUTPUT_ZERO_POINT);
  proto_put_str(o, " range=");
  proto_put_float_short(o, MODEL_INPUT_MIN);
  proto_put_char(o, ':');
  proto_put_float_short(o, MODEL_INPUT_MAX);
  proto_put_str(o, " arena=");
  proto_put_uint(o, (unsigned long)engine_arena_used());
}

static void reply_bench(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  long n = 0;
  long i;
  uint32_t t0;
  uint32_t t1;
  if (!proto_next_field(&pos, end, &field, &flen) || proto_parse_int(field, flen, &n) != 0 ||
      n < 1 || n > BENCH_MAX || proto_next_field(&pos, end, &field, &flen)) {
    put_error(o, 8, "bench N needs 1 <= N <= 1000000");
    return;
  }
  if (app->micros == NULL) {
    put_error(o, 8, "bench needs a platform clock");
    return;
  }
  if (ensure_engine(app, o) != 0) return;
  for (i = 0; i < MODEL_INPUT_COUNT; i++) app->input[i] = (int8_t)MODEL_INPUT_ZERO_POINT; /* x = 0 */
  t0 = app->micros();
  for (i = 0; i < n; i++) {
    if (engine_invoke(app->input, app->output) != 0) {
      put_engine_error(o);
      return;
    }
  }
  t1 = app->micros();
  proto_put_str(o, "bench n=");
  proto_put_int(o, n);
  proto_put_str(o, " us=");
  proto_put_uint(o, (unsigned long)(uint32_t)(t1 - t0)); /* wrap-safe difference */
}

static void reply_command(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *word;
  size_t wlen;
  const char *rest;
  if (!proto_next_field(&pos, end, &word, &wlen)) return; /* cannot happen: caller checked */
  rest = pos;
  if (field_is(word, wlen, "q")) {
    reply_codes(app, rest, end, o);
  } else if (field_is(word, wlen, "bench")) {
    reply_bench(app, rest, end, o);
  } else if (field_is(word, wlen, "id") || field_is(word, wlen, "?") ||
             field_is(word, wlen, "help")) {
    const char *extra;
    size_t elen;
    if (proto_next_field(&rest, end, &extra, &elen)) {
      put_error(o, 8, word[0] == 'h' ? "help takes no arguments" : "id takes no arguments");
    } else if (word[0] == 'h') {
      proto_put_str(o, k_help);
    } else {
      reply_id(app, o);
    }
  } else {
    put_error(o, 6, "unknown command (try help)");
  }
}

size_t app_respond(app_t *app, const char *line, size_t len, char *out, size_t cap) {
  proto_out_t o;
  const char *pos = line;
  const char *end;
  if (app == NULL || out == NULL || cap < 2) return 0;
  if (line == NULL) len = 0;
  end = line == NULL ? NULL : line + len;
  proto_out_init(&o, out, cap - 2); /* CRLF always fits */

  while (pos != NULL && pos < end && proto_is_separator(*pos)) pos++;
  if (pos == NULL || pos >= end) {
    put_error(&o, 1, "empty line");
  } else if (is_letter(*pos) || *pos == '?') {
    reply_command(app, pos, end, &o);
  } else {
    reply_values(app, pos, end, &o);
  }
  out[o.len++] = '\r';
  out[o.len++] = '\n';
  return o.len;
}

void app_feed(app_t *app, const uint8_t *bytes, size_t n) {
  size_t i;
  if (app == NULL || bytes == NULL) return;
  for (i = 0; i < n; i++) {
    const char *line = NULL;
    size_t len = 0;
    proto_line_event_t ev = proto_line_push(&app->line, bytes[i], &line, &len);
    if (ev == PROTO_LINE_READY) {
      size_t r = app_respond(app, line, len, app->response, sizeof app->response);
      if (app->write != NULL) app->write(app->ctx, (const uint8_t *)app->response, r);
    } else if (ev == PROTO_LINE_TOO_LONG) {
      if (app->write != NULL) {
        app->write(app->ctx, (const uint8_t *)k_too_long, sizeof k_too_long - 1);
      }
    }
  }
}
