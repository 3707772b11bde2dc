/* Serial protocol v1 dispatcher: see app.h and docs/protocol.md. */
#include "app.h"

#include <string.h>

#include "decimal.h"
#include "engine.h"
#include "errors.h"

#define ENGINE_ERROR_MAX 96 /* characters of engine_error() quoted in ERR 7 */

/* A model trained on inputs far from 0 takes x - MODEL_INPUT_CENTER (model_info.h); one without a
 * center subtracts 0.0f, which leaves every float as it is. */
#ifdef MODEL_INPUT_CENTER
#define APP_INPUT_CENTERED 1
#else
#define APP_INPUT_CENTERED 0
#define MODEL_INPUT_CENTER 0.0f
#endif

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

/* clamp(round_half_away_from_zero((x - center) / scale) + zp, -128, 127), with x - center and
 * the division computed in float as TFLM's quantize kernel does (center 0.0f: TFLM's own). */
static int8_t quantize_input(float x) {
  float q = (x - MODEL_INPUT_CENTER) / MODEL_INPUT_SCALE;
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

/* The answer to a value query whose codes are in app->input: the outputs as values, a
 * classifier's top label, then ` clipped` when an input lay outside the calibrated range. */
static void answer_values(app_t *app, int clipped, proto_out_t *o) {
  size_t i;
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

/* The answer to `q` whose codes are in app->input: `q` and the output codes. */
static void answer_codes(app_t *app, proto_out_t *o) {
  size_t i;
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

/* One value field: 0 and its code in *code (and *clipped set when outside the range), or -1. */
static int value_field(const char *field, size_t n, int8_t *code, int *clipped) {
  float x;
  if (dec_parse_float(field, n, &x) != 0) return -1;
  if (x < MODEL_INPUT_MIN || x > MODEL_INPUT_MAX) *clipped = 1;
  *code = quantize_input(x);
  return 0;
}

/* One code field: 0 and the code, or -1 unless it is an integer in -128..127. */
static int code_field(const char *field, size_t n, int8_t *code) {
  long v;
  if (proto_parse_int(field, n, &v) != 0 || v < -128 || v > 127) return -1;
  *code = (int8_t)v;
  return 0;
}

static void reply_values(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  size_t count = 0;
  int clipped = 0;
  while (proto_next_field(&pos, end, &field, &flen)) {
    int8_t code;
    count++;
    if (value_field(field, flen, &code, &clipped) != 0) {
      put_field_error(o, PROTO_ERR_BAD_NUMBER, "bad number at field ", count);
      return;
    }
    if (count <= MODEL_INPUT_COUNT) app->input[count - 1] = code;
  }
  if (count != MODEL_INPUT_COUNT) {
    put_count_error(o, "values", count);
    return;
  }
  answer_values(app, clipped, o);
}

static void reply_codes(app_t *app, const char *pos, const char *end, proto_out_t *o) {
  const char *field;
  size_t flen;
  size_t count = 0;
  while (proto_next_field(&pos, end, &field, &flen)) {
    int8_t code;
    count++;
    if (code_field(field, flen, &code) != 0) {
      put_field_error(o, PROTO_ERR_BAD_CODE, "bad code at field ", count);
      return;
    }
    if (count <= MODEL_INPUT_COUNT) app->input[count - 1] = code;
  }
  if (count != MODEL_INPUT_COUNT) {
    put_count_error(o, "codes", count);
    return;
  }
  answer_codes(app, o);
}

static void put_shortest(proto_out_t *o, float f) {
  char text[DEC_TEXT_MAX];
  dec_format_shortest(text, sizeof text, f);
  proto_put_str(o, text);
}

/* The quantization fields of `id`, formatted once: they are constants, and each shortest
 * float text costs thousands of instructions (a line of `?` would be the new `bench`). */
static const char *id_quantization(void) {
  static char text[128 + 32 * APP_INPUT_CENTERED];
  proto_out_t o;
  if (text[0] != '\0') return text;
  proto_out_init(&o, text, sizeof text - 1);
  proto_put_str(&o, " in_scale=");
  put_shortest(&o, MODEL_INPUT_SCALE);
  proto_put_str(&o, " in_zp=");
  proto_put_int(&o, MODEL_INPUT_ZERO_POINT);
#if APP_INPUT_CENTERED
  proto_put_str(&o, " in_center=");
  put_shortest(&o, MODEL_INPUT_CENTER);
#endif
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

/* The answer to one stored line (without its CRLF) into o. */
static void respond(app_t *app, const char *line, size_t len, proto_out_t *o) {
  const char *pos = line;
  const char *end = line == NULL ? NULL : line + len;
  while (pos != NULL && pos < end && proto_is_separator(*pos)) pos++;
  if (pos == NULL || pos >= end) {
    put_error(o, PROTO_ERR_EMPTY_LINE, "empty line");
  } else if (is_letter(*pos) || *pos == '?') {
    reply_command(app, pos, end, o);
  } else {
    reply_values(app, pos, end, o);
  }
}

size_t app_respond(app_t *app, const char *line, size_t len, char *out, size_t cap) {
  proto_out_t o;
  if (app == NULL || out == NULL || cap < 2) return 0;
  proto_out_init(&o, out, cap - 2); /* CRLF always fits */
  respond(app, line, line == NULL ? 0 : len, &o);
  out[o.len++] = '\r';
  out[o.len++] = '\n';
  return o.len;
}

/* ---- sending: answers formatted as they go out, remembered as a length and a hash ---- */

#define HASH_SEED 0xcbf29ce484222325ull /* FNV-1a 64 */
#define HASH_PRIME 0x100000001b3ull

static uint64_t hash_byte(uint64_t h, uint8_t byte) { return (h ^ byte) * HASH_PRIME; }

/* A received line's hash as an answer line: its bytes, then the CRLF every answer ends with. */
static uint64_t hash_as_answer(uint64_t h) { return hash_byte(hash_byte(h, '\r'), '\n'); }

/* proto_flush_fn: one piece of the answer to the peer, counted into its hash. */
static void send_piece(void *ctx, const char *bytes, size_t n) {
  app_t *app = (app_t *)ctx;
  size_t i;
  for (i = 0; i < n; i++) app->out_hash = hash_byte(app->out_hash, (uint8_t)bytes[i]);
  app->out_len += n;
  if (app->write != NULL) app->write(app->ctx, (const uint8_t *)bytes, n);
}

static void answer_open(app_t *app, proto_out_t *o) {
  app->out_hash = HASH_SEED;
  app->out_len = 0;
  proto_out_init_stream(o, app->response, sizeof app->response, send_piece, app);
}

/* Ends the answer with CRLF, sends what is left and remembers the whole line. */
static void answer_close(app_t *app, proto_out_t *o) {
  app_echo_t *slot = &app->echo[app->echo_next];
  proto_put_char(o, '\r');
  proto_put_char(o, '\n');
  proto_out_flush(o);
  slot->len = (uint32_t)app->out_len;
  slot->hash[0] = (uint32_t)app->out_hash;
  slot->hash[1] = (uint32_t)(app->out_hash >> 32);
  app->echo_next = (app->echo_next + 1u) % APP_ECHO_LINES;
}

/* 1 when a line of len bytes (its CRLF included) hashing to h is one of the recent answers. */
static int recently_sent(const app_t *app, size_t len, uint64_t h) {
  size_t i;
  for (i = 0; i < APP_ECHO_LINES; i++) {
    const app_echo_t *e = &app->echo[i];
    if (e->len != 0 && e->len == len && e->hash[0] == (uint32_t)h && e->hash[1] == (uint32_t)(h >> 32)) {
      return 1;
    }
  }
  return 0;
}

/* Decides whether a complete line is an echo of the device's own output (not answered)
 * and updates the echo state; see docs/protocol.md, "Echo". empty: the line has no byte;
 * repeat: it equals one of the answer lines in the echo memory; err_line: it starts with
 * PROTO_ERR_PREFIX. */
static int echo_verdict(app_t *app, int empty, int repeat, int err_line, int ended_by_cr) {
  int after_echo = app->after_echo;
  int lf_repeat = app->lf_repeat;
  app->after_echo = 0;
  app->lf_repeat = 0;
  if (empty) {
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

static int starts_as_error(const char *line, size_t len) {
  size_t prefix = sizeof PROTO_ERR_PREFIX - 1;
  return len >= prefix && memcmp(line, PROTO_ERR_PREFIX, prefix) == 0;
}

static int drop_as_echo(app_t *app, const char *line, size_t len, int ended_by_cr) {
  uint64_t h = HASH_SEED;
  size_t i;
  for (i = 0; i < len; i++) h = hash_byte(h, (uint8_t)line[i]);
  return echo_verdict(app, len == 0, len > 0 && recently_sent(app, len + 2, hash_as_answer(h)),
                      starts_as_error(line, len), ended_by_cr);
}

/* ---- long lines: parsed field by field as they arrive ------------------------------- */

/* The echo memory for a long line: its final bytes are hashed as they become final (the
 * field being typed only when it ends: Backspace may still shorten it), and the whole
 * line is looked up at its end. */
static void echo_feed(app_t *app, uint8_t byte) {
  app->stream.echo_hash = hash_byte(app->stream.echo_hash, byte);
  app->stream.echo_len++;
}

/* 1 when the line's final bytes are one whole answer line of the echo memory. */
static int echo_whole(const app_t *app) {
  return recently_sent(app, app->stream.echo_len + 2, hash_as_answer(app->stream.echo_hash));
}

static void echo_feed_bytes(app_t *app, const char *bytes, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) echo_feed(app, (uint8_t)bytes[i]);
}

/* The field being typed (in line.buf) is complete: it becomes final (echo memory), and is
 * parsed into app->input; the first field says what the line is. */
static void stream_field_done(app_t *app) {
  app_stream_t *st = &app->stream;
  proto_line_t *ln = &app->line;
  const char *f = ln->buf;
  size_t n = ln->len;
  int bad = st->long_field;
  int8_t code = 0;
  int ok;
  if (!bad) echo_feed_bytes(app, f, n); /* a long field's bytes went there as they came */
  ln->len = 0;
  st->long_field = 0;
  if (n == 0) return; /* cannot happen: callers pass a field */
  if (st->kind == APP_STREAM_UNKNOWN) {
    if (is_letter(f[0]) || f[0] == '?') {
      st->kind = !bad && n == 1 && f[0] == 'q' ? APP_STREAM_CODES : APP_STREAM_LONG;
      return;
    }
    st->kind = APP_STREAM_VALUES;
  }
  st->fields++;
  if (st->bad_field != 0) return; /* the first bad field is the answer: only counted on */
  if (st->kind == APP_STREAM_VALUES) {
    int clipped = st->clipped;
    ok = !bad && value_field(f, n, &code, &clipped) == 0;
    st->clipped = (uint8_t)clipped;
  } else {
    ok = !bad && code_field(f, n, &code) == 0;
  }
  if (!ok) {
    st->bad_field = st->fields;
  } else if (st->fields <= MODEL_INPUT_COUNT) {
    app->input[st->fields - 1] = code;
  }
}

/* A byte of a long line other than a line ending, Backspace or DEL. */
static void stream_byte(app_t *app, uint8_t byte) {
  app_stream_t *st = &app->stream;
  proto_line_t *ln = &app->line;
  if (st->kind == APP_STREAM_LONG) { /* not a query: nothing is parsed, nothing edited */
    echo_feed(app, byte);
    return;
  }
  if (proto_is_separator((char)byte)) {
    if (ln->len > 0 || st->long_field) stream_field_done(app);
    echo_feed(app, byte);
    return;
  }
  if (!st->long_field && ln->len >= PROTO_FIELD_MAX) { /* too long for a number or a code */
    st->long_field = 1;
    echo_feed_bytes(app, ln->buf, ln->len); /* final now: Backspace cannot shorten it */
  }
  if (st->long_field) {
    echo_feed(app, byte);
    return;
  }
  ln->buf[ln->len++] = (char)byte;
}

/* Backspace or DEL in a long line: deletes the last byte of the field being typed; after a
 * separator, in a field too long already, or in a line that is not a query, nothing. */
static void stream_backspace(app_t *app) {
  app_stream_t *st = &app->stream;
  if (st->kind != APP_STREAM_LONG && !st->long_field && app->line.len > 0) app->line.len--;
}

/* The stored line (PROTO_LINE_MAX bytes) gets one more byte: from now on it is parsed
 * field by field. Its bytes go through the same steps as the bytes after them, in place
 * (the field being typed is written at or before the byte being read). */
static void stream_start(app_t *app) {
  app_stream_t *st = &app->stream;
  proto_line_t *ln = &app->line;
  size_t n = ln->len;
  size_t i;
  memset(st, 0, sizeof *st);
  st->active = 1;
  st->echo_hash = HASH_SEED;
  st->err_line = (uint8_t)starts_as_error(ln->buf, n);
  ln->len = 0;
  for (i = 0; i < n; i++) stream_byte(app, (uint8_t)ln->buf[i]);
}

/* The answer to a long line that is not an echo. */
static void stream_respond(app_t *app, proto_out_t *o) {
  const app_stream_t *st = &app->stream;
  int values = st->kind == APP_STREAM_VALUES;
  if (st->kind != APP_STREAM_VALUES && st->kind != APP_STREAM_CODES) {
    put_error(o, PROTO_ERR_LINE_TOO_LONG, k_too_long);
  } else if (st->bad_field != 0) {
    put_field_error(o, values ? PROTO_ERR_BAD_NUMBER : PROTO_ERR_BAD_CODE,
                    values ? "bad number at field " : "bad code at field ", st->bad_field);
  } else if (st->fields != MODEL_INPUT_COUNT) {
    put_count_error(o, values ? "values" : "codes", st->fields);
  } else if (values) {
    answer_values(app, st->clipped, o);
  } else {
    answer_codes(app, o);
  }
}

/* A long line's ending: its last field, the echo rule, the answer. */
static void stream_end(app_t *app, int ended_by_cr) {
  app_stream_t *st = &app->stream;
  proto_line_t *ln = &app->line;
  if (st->kind != APP_STREAM_LONG && (ln->len > 0 || st->long_field)) stream_field_done(app);
  if (!echo_verdict(app, 0, echo_whole(app), st->err_line, ended_by_cr)) {
    proto_out_t o;
    answer_open(app, &o);
    stream_respond(app, &o);
    answer_close(app, &o);
  }
  memset(st, 0, sizeof *st);
  ln->len = 0;
  ln->overflow = 0;
  ln->after_cr = (uint8_t)(ended_by_cr != 0);
}

static void feed_byte(app_t *app, uint8_t byte) {
  const char *line = NULL;
  size_t len = 0;
  proto_line_event_t ev;
  proto_out_t o;
  int ending = byte == '\r' || byte == '\n';
  int edit = byte == PROTO_BACKSPACE || byte == PROTO_DELETE;
  if (app->stream.active) {
    if (ending) {
      stream_end(app, byte == '\r');
    } else if (edit) {
      stream_backspace(app);
    } else {
      app->line.after_cr = 0;
      stream_byte(app, byte);
    }
    return;
  }
  if (!ending && !edit && app->line.len >= PROTO_LINE_MAX) { /* one byte more than stored */
    app->line.after_cr = 0;
    stream_start(app);
    stream_byte(app, byte);
    return;
  }
  ev = proto_line_push(&app->line, byte, &line, &len);
  if (ev == PROTO_LINE_TOO_LONG) { /* cannot happen: a long line is streamed above */
    app->after_echo = app->lf_repeat = app->lf_echo = 0;
    answer_open(app, &o);
    put_error(&o, PROTO_ERR_LINE_TOO_LONG, k_too_long);
    answer_close(app, &o);
  } else if (ev == PROTO_LINE_READY && !drop_as_echo(app, line, len, app->line.after_cr)) {
    answer_open(app, &o);
    respond(app, line, len, &o);
    answer_close(app, &o);
  }
}

void app_feed(app_t *app, const uint8_t *bytes, size_t n) {
  size_t i;
  if (app == NULL || bytes == NULL) return;
  for (i = 0; i < n; i++) feed_byte(app, bytes[i]);
}
