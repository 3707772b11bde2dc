/* Serial protocol v1 dispatcher: see app.h and docs/protocol.md. */
#include "app.h"

#include <string.h>

#include "decimal.h"
#include "engine.h"
#include "errors.h"

#define ENGINE_ERROR_MAX 96 /* characters of engine_error() quoted in ERR 7 */

#define APP_STR_(x) #x
#define APP_STR(x) APP_STR_(x)

#if MODEL_CLASS_COUNT > 0
static const char k_help[] = "help: X1 [X2 ...] | q C1 [C2 ...] | id | labels | bench N | help";
#define APP_LABEL_(text) text,
static const char *const k_labels[MODEL_CLASS_COUNT] = {MODEL_LABELS(APP_LABEL_)};
#undef APP_LABEL_
#else
static const char k_help[] = "help: X1 [X2 ...] | q C1 [C2 ...] | id | bench N | help";
#endif
static const char k_too_long[] = "line too long (max " APP_STR(PROTO_LINE_MAX) " bytes)";
static const char k_bench_range[] = "bench N needs 1 <= N <= " APP_STR(APP_BENCH_MAX);

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

static void put_error(proto_out_t *o, proto_err_t code, const char *reason) {
  proto_put_str(o, PROTO_ERR_PREFIX);
  proto_put_int(o, code);
  proto_put_char(o, ' ');
  proto_put_str(o, reason);
}

static void put_field_error(proto_out_t *o, proto_err_t code, const char *reason, size_t field) {
  put_error(o, code, reason);
  proto_put_uint(o, (unsigned long)field);
}

static void put_count_error(proto_out_t *o, const char *what, size_t got) {
  put_error(o, PROTO_ERR_WRONG_COUNT, "expected ");
  proto_put_uint(o, (unsigned long)MODEL_INPUT_COUNT);
  proto_put_char(o, ' ');
  proto_put_str(o, what);
  proto_put_str(o, ", got ");
  proto_put_uint(o, (unsigned long)got);
}

static void put_engine_error(proto_out_t *o) {
  const char *why = engine_error();
  put_error(o, PROTO_ERR_ENGINE, "engine: ");
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
    if (dec_parse_float(field, flen, &x) != 0) {
      put_field_error(o, PROTO_ERR_BAD_NUMBER, "bad number at field ", count);
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
    char text[DEC_TEXT_MAX];
    dec_format_scaled(text, sizeof text, (int32_t)app->output[i] - (int32_t)(MODEL_OUTPUT_ZERO_POINT),
                      MODEL_OUTPUT_SCALE);
    proto_put_str(o, text);
  }
#if MODEL_CLASS_COUNT > 0
  {
    size_t top = 0;
    for (i = 1; i < MODEL_OUTPUT_COUNT; i++) {
      if (app->output[i] > app->output[top]) top = i; /* ties: the lowest index */
    }
    proto_put_char(o, ' ');
    proto_put_str(o, k_labels[top]);
  }
#endif
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
      put_field_error(o, PROTO_ERR_BAD_CODE, "bad code at field ", count);
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

static void put_shortest(proto_out_t *o, float f) {
  char text[DEC_TEXT_MAX];
  dec_format_shortest(text, sizeof text, f);
  proto_put_str(o, text);
}

/* The quantization fields of `id`, formatted once: they are constants, and each shortest
 * float text costs thousands of instructions (a line of `?` would be the new `bench`). */
static const char *id_quantization(void) {
  static char text[128];
  proto_out_t o;
  if (text[0] != '\0') return text;
  proto_out_init(&o, text, sizeof text - 1);
  proto_put_str(&o, " in_scale=");
  put_shortest(&o, MODEL_INPUT_SCALE);
  proto_put_str(&o, " in_zp=");
  proto_put_int(&o, MODEL_INPUT_ZERO_POINT);
  proto_put_str(&o, " out_scale=");
  put_shortest(&o, MODEL_OUTPUT_SCALE);
  proto_put_str(&o, " out_zp=");
  proto_put_int(&o, MODEL_OUTPUT_ZERO_POINT);
  proto_put_str(&o, " range=");
  put_shortest(&o, MODEL_INPUT_MIN);
  proto_put_char(&o, ':');
  put_shortest(&o, MODEL_INPUT_MAX);
  text[o.len] = '\0';
  return text;
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
  proto_put_str(o, id_quantization());
  proto_put_str(o, " arena=");
  proto_put_uint(o, (unsigned long)engine_arena_used());
#if MODEL_CLASS_COUNT > 0
  proto_put_str(o, " task=classify classes=");
  proto_put_uint(o, (unsigned long)MODEL_CLASS_COUNT);
#endif
}

#if MODEL_CLASS_COUNT > 0
static void reply_labels(proto_out_t *o) {
  size_t i;
  proto_put_str(o, "labels");
  for (i = 0; i < MODEL_CLASS_COUNT; i++) {
    proto_put_char(o, ' ');
    proto_put_str(o, k_labels[i]);
  }
}
#endif

static void reply_bench(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  long n = 0;
  long i;
  uint32_t t0;
  uint32_t t1;
  if (!proto_next_field(&pos, end, &field, &flen) || proto_parse_int(field, flen, &n) != 0 ||
      n < 1 || n > APP_BENCH_MAX || proto_next_field(&pos, end, &field, &flen)) {
    put_error(o, PROTO_ERR_BAD_ARGUMENT, k_bench_range);
    return;
  }
  if (app->micros == NULL) {
    put_error(o, PROTO_ERR_BAD_ARGUMENT, "bench needs a platform clock");
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
  } else if (field_is(word, wlen, "id") || field_is(word, wlen, "?") || field_is(word, wlen, "help") ||
             (MODEL_CLASS_COUNT > 0 && field_is(word, wlen, "labels"))) {
    const char *extra;
    size_t elen;
    if (proto_next_field(&rest, end, &extra, &elen)) {
      put_error(o, PROTO_ERR_BAD_ARGUMENT,
                word[0] == 'h' ? "help takes no arguments"
                               : word[0] == 'l' ? "labels takes no arguments" : "id takes no arguments");
    } else if (word[0] == 'h') {
      proto_put_str(o, k_help);
#if MODEL_CLASS_COUNT > 0
    } else if (word[0] == 'l') {
      reply_labels(o);
#endif
    } else {
      reply_id(app, o);
    }
  } else {
    put_error(o, PROTO_ERR_UNKNOWN_COMMAND, "unknown command (try help)");
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
    put_error(&o, PROTO_ERR_EMPTY_LINE, "empty line");
  } else if (is_letter(*pos) || *pos == '?') {
    reply_command(app, pos, end, &o);
  } else {
    reply_values(app, pos, end, &o);
  }
  out[o.len++] = '\r';
  out[o.len++] = '\n';
  return o.len;
}

/* The answer to a line that arrived too long: the line itself was never stored. */
static size_t too_long_answer(char *out, size_t cap) {
  proto_out_t o;
  proto_out_init(&o, out, cap - 2); /* cap is APP_RESPONSE_MAX */
  put_error(&o, PROTO_ERR_LINE_TOO_LONG, k_too_long);
  out[o.len++] = '\r';
  out[o.len++] = '\n';
  return o.len;
}

/* Appends one answer (CRLF included) to the echo memory, first dropping the oldest whole
 * lines that no longer fit. */
static void remember(app_t *app, const char *answer, size_t n) {
  if (n > APP_ECHO_WINDOW) n = 0; /* cannot happen: an answer fits (APP_RESPONSE_MAX) */
  if (app->sent_len + n > APP_ECHO_WINDOW) {
    size_t drop = app->sent_len + n - APP_ECHO_WINDOW;
    while (drop < app->sent_len && app->sent[drop - 1] != '\n') drop++; /* to a line start */
    memmove(app->sent, app->sent + drop, app->sent_len - drop);
    app->sent_len -= drop;
  }
  memcpy(app->sent + app->sent_len, answer, n);
  app->sent_len += n;
}

/* 1 when line is, byte for byte, one of the answer lines in the echo memory. */
static int recently_sent(const app_t *app, const char *line, size_t len) {
  size_t pos = 0;
  if (len == 0) return 0;
  while (pos < app->sent_len) {
    const char *nl;
    if (app->sent_len - pos >= len + 2 && memcmp(app->sent + pos, line, len) == 0 &&
        app->sent[pos + len] == '\r' && app->sent[pos + len + 1] == '\n') {
      return 1;
    }
    nl = (const char *)memchr(app->sent + pos, '\n', app->sent_len - pos);
    if (nl == NULL) break;
    pos = (size_t)(nl - app->sent) + 1;
  }
  return 0;
}

static void send_line(app_t *app, const char *bytes, size_t n) {
  remember(app, bytes, n);
  if (app->write != NULL) app->write(app->ctx, (const uint8_t *)bytes, n);
}

/* Decides whether a complete line is an echo of the device's own output (not answered)
 * and updates the echo state; see docs/protocol.md, "Echo". */
static int drop_as_echo(app_t *app, const char *line, size_t len, int ended_by_cr) {
  int repeat = recently_sent(app, line, len);
  size_t prefix = sizeof PROTO_ERR_PREFIX - 1;
  int err_line = len >= prefix && memcmp(line, PROTO_ERR_PREFIX, prefix) == 0;
  int after_echo = app->after_echo;
  int lf_repeat = app->lf_repeat;
  app->after_echo = 0;
  app->lf_repeat = 0;
  if (len == 0) {
    if (after_echo) return 1; /* the extra ending of an echo: CR came back as LF, or LF as CRLF */
    if (lf_repeat) app->lf_echo = 1; /* a repeat, then LF LF: how `stty -opost` echoes CRLF */
    return 0;
  }
  if (!repeat) {
    app->lf_echo = 0;
    return 0;
  }
  if (ended_by_cr || err_line || app->lf_echo) {
    app->after_echo = 1;
    return 1;
  }
  app->lf_repeat = 1; /* a program may ask what it was just told: answered */
  return 0;
}

void app_feed(app_t *app, const uint8_t *bytes, size_t n) {
  size_t i;
  if (app == NULL || bytes == NULL) return;
  for (i = 0; i < n; i++) {
    const char *line = NULL;
    size_t len = 0;
    proto_line_event_t ev = proto_line_push(&app->line, bytes[i], &line, &len);
    if (ev == PROTO_LINE_TOO_LONG) {
      app->after_echo = app->lf_repeat = app->lf_echo = 0;
      send_line(app, app->response, too_long_answer(app->response, sizeof app->response));
    } else if (ev == PROTO_LINE_READY && !drop_as_echo(app, line, len, app->line.after_cr)) {
      send_line(app, app->response, app_respond(app, line, len, app->response, sizeof app->response));
    }
  }
}
