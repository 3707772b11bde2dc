/* libFuzzer harness for the portable core (app_feed), against an independent reference of
 * its line layer: CR, LF and CRLF endings, Backspace and DEL, lines longer than the stored
 * 128 bytes (queries parsed field by field, commands refused), and the echo rule
 * (docs/protocol.md). Each input goes to a fresh app in uneven chunks; after every chunk,
 * what the app sent must equal, byte for byte, what the reference expects (it stores every
 * line whole, however long, and asks a second app's app_respond for each line's answer:
 * so app_feed's field-by-field parse of a long query is checked against the whole-line
 * parse).
 * Then, in the state the input left, `10` must still get the answer a fresh device gives,
 * and that answer fed back as a tty with echo on returns it must get no answer.
 *
 *   cmake -S firmware -B build/fuzz -DFUZZ=ON -DCMAKE_C_COMPILER=clang
 *   cmake --build build/fuzz --target fuzz_protocol
 *   build/fuzz/fuzz_protocol -max_len=4096 -max_total_time=60 CORPUS_DIR
 *
 * The fuzz build lowers APP_BENCH_MAX (CMakeLists.txt): a corpus full of `bench 1000000`
 * lines would otherwise spend its time in the engine, not in the parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The harness's own code gets no coverage feedback: its loops (the reference scans the
 * output byte by byte) would cost more than the core itself and guide nothing. */
#define HARNESS __attribute__((no_sanitize("coverage")))

#define CHUNK_MAX 17u
#define OUT_CAP (2u * (CHUNK_MAX + 1u) * APP_RESPONSE_MAX)
#define HIST_CAP ((APP_ECHO_LINES + 1u) * APP_RESPONSE_MAX)

#define STR_(x) #x
#define STR(x) STR_(x)
/* The codes are the spec's own numbers, not errors.h's names: the reference stays
 * independent of the table it checks. */
static const char k_err2[] = "ERR 2 line too long (max " STR(PROTO_LINE_MAX) " bytes)\r\n";
static const char k_err1[] = "ERR 1 empty line\r\n";

/* ---- what the app sends --------------------------------------------------------- */

typedef struct {
  char bytes[OUT_CAP];
  size_t len;
  int saw_cr;  /* the last byte written was an answer's CR */
  int in_line; /* an answer line has begun and not yet ended */
} out_t;

HARNESS static void out_add(out_t *o, const char *bytes, size_t n) {
  if (n > sizeof o->bytes - o->len) abort();
  memcpy(o->bytes + o->len, bytes, n);
  o->len += n;
}

static uint32_t g_clock;
static uint32_t fake_micros(void) { return g_clock += 7u; } /* bench us= is always 7 */

/* app_write_fn: pieces of at most APP_OUT_CHUNK bytes, making response lines of printable
 * ASCII, each ending CRLF (checked across pieces; whole lines by the end of app_feed). */
HARNESS static void sink_write(void *ctx, const uint8_t *bytes, size_t n) {
  out_t *o = (out_t *)ctx;
  size_t i;
  if (n == 0 || n > APP_OUT_CHUNK) abort();
  for (i = 0; i < n; i++) {
    uint8_t c = bytes[i];
    if (o->saw_cr) {
      if (c != '\n' || !o->in_line) abort(); /* CR only in the final CRLF of a non-empty line */
      o->saw_cr = 0;
      o->in_line = 0;
    } else if (c == '\r') {
      o->saw_cr = 1;
    } else if (c < 0x20 || c > 0x7e) {
      abort();
    } else {
      o->in_line = 1;
    }
  }
  out_add(o, (const char *)bytes, n);
}

/* app_feed, which must have sent whole answer lines when it returns. */
HARNESS static void app_feed_whole(app_t *app, const uint8_t *bytes, size_t n, out_t *got) {
  app_feed(app, bytes, n);
  if (got->saw_cr || got->in_line) abort();
}

/* ---- the reference ---------------------------------------------------------------- */

#define REF_LINE_CAP 65536u /* longer than any input the harness is run with */

typedef struct {
  char line[REF_LINE_CAP];
  size_t len;
  int long_line; /* the line passed PROTO_LINE_MAX bytes (and stays long to its end) */
  int prev_cr;
  int after_echo; /* the last line was an echo */
  int lf_repeat;  /* the last line repeated an answer, ended by LF, and was answered */
  int lf_echo;    /* LF-ended repeats are echoes now */
  char hist[HIST_CAP]; /* the last APP_ECHO_LINES answer lines sent, oldest first */
  size_t hist_len;
  size_t hist_lines;
  app_t answers; /* answers each line with app_respond only */
} ref_t;

/* Keeps one answer line (CRLF included, at most APP_RESPONSE_MAX bytes), forgetting the
 * oldest beyond APP_ECHO_LINES. */
HARNESS static void ref_sent(ref_t *r, const char *bytes, size_t n) {
  if (n > APP_RESPONSE_MAX) abort();
  if (r->hist_lines == APP_ECHO_LINES) {
    const char *nl = (const char *)memchr(r->hist, '\n', r->hist_len);
    size_t cut = (size_t)(nl - r->hist) + 1;
    memmove(r->hist, r->hist + cut, r->hist_len - cut);
    r->hist_len -= cut;
    r->hist_lines--;
  }
  memcpy(r->hist + r->hist_len, bytes, n);
  r->hist_len += n;
  r->hist_lines++;
}

/* Whether line + CRLF is one of the answer lines remembered. */
HARNESS static int ref_recent(const ref_t *r, const char *line, size_t len) {
  size_t start = 0;
  while (start < r->hist_len) {
    const char *nl = (const char *)memchr(r->hist + start, '\n', r->hist_len - start);
    size_t end = (size_t)(nl - r->hist) + 1;
    if (end - start == len + 2 && memcmp(r->hist + start, line, len) == 0) return 1;
    start = end;
  }
  return 0;
}

HARNESS static void ref_answer(ref_t *r, const char *bytes, size_t n, out_t *expect) {
  out_add(expect, bytes, n);
  ref_sent(r, bytes, n);
}

static int ref_separator(char c) { return c == ' ' || c == '\t' || c == ','; }

static int ref_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* The first field of the line: its start (or len when none) and its length. */
HARNESS static size_t ref_first_field(const ref_t *r, size_t *n) {
  size_t start = 0;
  size_t end;
  while (start < r->len && ref_separator(r->line[start])) start++;
  end = start;
  while (end < r->len && !ref_separator(r->line[end])) end++;
  *n = end - start;
  return start;
}

/* A long line that is a command, or has no field: refused with ERR 2. */
HARNESS static int ref_long_refused(const ref_t *r) {
  size_t n;
  size_t at = ref_first_field(r, &n);
  if (n == 0) return 1;
  if (!ref_letter(r->line[at]) && r->line[at] != '?') return 0;
  return !(n == 1 && r->line[at] == 'q');
}

/* The answer to a long line: ERR 2 for a command, else app_respond's on the whole line with
 * every field longer than PROTO_FIELD_MAX (no number or code can be) made a bad one. */
HARNESS static size_t ref_long_answer(ref_t *r, char *answer, size_t cap) {
  static char rewritten[REF_LINE_CAP + 8];
  size_t n = 0;
  size_t i = 0;
  if (ref_long_refused(r)) {
    memcpy(answer, k_err2, sizeof k_err2 - 1);
    return sizeof k_err2 - 1;
  }
  while (i < r->len) {
    size_t end = i;
    if (ref_separator(r->line[i])) {
      rewritten[n++] = r->line[i++];
      continue;
    }
    while (end < r->len && !ref_separator(r->line[end])) end++;
    if (end - i > PROTO_FIELD_MAX) {
      memcpy(rewritten + n, "-x", 2); /* starts like a value, parses as nothing */
      n += 2;
    } else {
      memcpy(rewritten + n, r->line + i, end - i);
      n += end - i;
    }
    i = end;
  }
  return app_respond(&r->answers, rewritten, n, answer, cap);
}

/* The spec's rules, in its order: empty, repeat of a recent answer, request (a long line
 * that is not a query: ERR 2). */
HARNESS static void ref_line_done(ref_t *r, int by_cr, out_t *expect) {
  int was_echo = r->after_echo;
  int was_lf_repeat = r->lf_repeat;
  char answer[APP_RESPONSE_MAX];
  r->after_echo = 0;
  r->lf_repeat = 0;
  if (r->len == 0 && !r->long_line) {
    if (was_lf_repeat) r->lf_echo = 1;
    if (!was_echo) ref_answer(r, k_err1, sizeof k_err1 - 1, expect);
  } else if (!ref_recent(r, r->line, r->len)) {
    r->lf_echo = 0;
    ref_answer(r, answer,
               r->long_line ? ref_long_answer(r, answer, sizeof answer)
                            : app_respond(&r->answers, r->line, r->len, answer, sizeof answer),
               expect);
  } else if (by_cr || r->lf_echo || (r->len >= 4 && memcmp(r->line, "ERR ", 4) == 0)) {
    r->after_echo = 1;
  } else {
    r->lf_repeat = 1;
    ref_answer(r, answer,
               r->long_line ? ref_long_answer(r, answer, sizeof answer)
                            : app_respond(&r->answers, r->line, r->len, answer, sizeof answer),
               expect);
  }
  r->len = 0;
  r->long_line = 0;
}

/* Backspace in a long line edits only the field being typed: not after a separator, not a
 * field longer than PROTO_FIELD_MAX, and nothing once a command word is complete. */
HARNESS static int ref_long_backspace_edits(const ref_t *r) {
  size_t field = 0;
  size_t n;
  size_t at;
  while (field < r->len && !ref_separator(r->line[r->len - 1 - field])) field++;
  if (field == 0 || field > PROTO_FIELD_MAX) return 0;
  at = ref_first_field(r, &n);
  if (at + n < r->len && ref_long_refused(r)) return 0; /* the first field is complete */
  return 1;
}

HARNESS static void ref_byte(ref_t *r, uint8_t c, out_t *expect) {
  if (c == '\n' && r->prev_cr) {
    r->prev_cr = 0;
  } else if (c == 0x08 || c == 0x7f) {
    if (r->len > 0 && (!r->long_line || ref_long_backspace_edits(r))) r->len--;
  } else if (c == '\r' || c == '\n') {
    r->prev_cr = c == '\r';
    ref_line_done(r, c == '\r', expect);
  } else {
    r->prev_cr = 0;
    if (r->len == PROTO_LINE_MAX) r->long_line = 1;
    if (r->len < sizeof r->line) r->line[r->len++] = (char)c;
  }
}

/* ---- driving both ------------------------------------------------------------------ */

static app_t g_app;
static ref_t g_ref;
static out_t g_got;
static out_t g_expect;

/* Feeds bytes to the app and the reference in chunks; aborts unless they send the same.
 * Returns what was sent, in g_got. */
HARNESS static void feed(const uint8_t *bytes, size_t n, int chunked) {
  size_t i = 0;
  g_got.len = 0;
  g_expect.len = 0;
  while (i < n) {
    size_t chunk = chunked ? (size_t)(bytes[i] % CHUNK_MAX) + 1u : 1u;
    size_t j;
    size_t got_before = g_got.len;
    size_t expect_before = g_expect.len;
    if (chunk > n - i) chunk = n - i;
    if (g_got.len > OUT_CAP - (CHUNK_MAX + 1u) * APP_RESPONSE_MAX) { /* compared: drop */
      g_got.len = 0;
      g_expect.len = 0;
      got_before = expect_before = 0;
    }
    app_feed_whole(&g_app, bytes + i, chunk, &g_got);
    for (j = 0; j < chunk; j++) ref_byte(&g_ref, bytes[i + j], &g_expect);
    if (g_got.len - got_before != g_expect.len - expect_before ||
        memcmp(g_got.bytes + got_before, g_expect.bytes + expect_before,
               g_got.len - got_before) != 0) {
      abort(); /* the app and the reference disagree */
    }
    i += chunk;
  }
}

/* Feeds text to the app alone (the reference has done its part) and aborts unless the
 * app answers exactly expect (NULL: nothing). */
HARNESS static void expect_answer(const char *text, const char *expect, size_t expect_len) {
  g_got.len = 0;
  app_feed_whole(&g_app, (const uint8_t *)text, strlen(text), &g_got);
  if (g_got.len != expect_len || (expect_len > 0 && memcmp(g_got.bytes, expect, expect_len) != 0)) {
    abort();
  }
}

typedef struct {
  char request[APP_RESPONSE_MAX + 2];
  char answer[APP_RESPONSE_MAX];
  size_t answer_len;
} exchange_t;

static exchange_t g_ten;  /* `10` for every input, answered by a fresh device */
static exchange_t g_echo; /* that answer sent back with LF alone (a request), answered */
static exchange_t g_lf;   /* the answer to that, as a `-opost` tty echoes it: LF LF */

static void exchange(exchange_t *x, app_t *fresh, const char *request, size_t n) {
  memcpy(x->request, request, n);
  x->answer_len = app_respond(fresh, request, n, x->answer, sizeof x->answer);
  x->request[n] = '\n';
  x->request[n + 1] = '\0';
}

static void init_exchanges(void) {
  static app_t fresh;
  char ten[4 * MODEL_INPUT_COUNT];
  size_t i;
  size_t n = 0;
  for (i = 0; i < MODEL_INPUT_COUNT; i++) {
    if (i > 0) ten[n++] = ' ';
    ten[n++] = '1';
    ten[n++] = '0';
  }
  app_init(&fresh, NULL, NULL, fake_micros);
  exchange(&g_ten, &fresh, ten, n);
  exchange(&g_echo, &fresh, g_ten.answer, g_ten.answer_len - 2);
  exchange(&g_lf, &fresh, g_echo.answer, g_echo.answer_len - 2);
  memcpy(g_lf.request + g_echo.answer_len - 2, "\n\n", 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char sane_echo[APP_RESPONSE_MAX + 4];
  if (g_ten.answer_len == 0) init_exchanges();
  app_init(&g_app, sink_write, &g_got, fake_micros);
  g_got.saw_cr = g_got.in_line = 0;
  memset(&g_ref, 0, sizeof g_ref);
  app_init(&g_ref.answers, NULL, NULL, fake_micros);

  feed(data, size, 1);

  /* The input's state carries on: end its last line; then `10` must be answered as on a
   * fresh device, exactly once. */
  feed((const uint8_t *)"\n", 1, 0);
  expect_answer(g_ten.request, g_ten.answer, g_ten.answer_len);

  /* That answer coming back from a tty with echo on (`stty sane`: its CR became LF, and
   * LF went out as CRLF) is not answered. */
  memcpy(sane_echo, g_ten.answer, g_ten.answer_len);
  memcpy(sane_echo + g_ten.answer_len, "\r\n", 3);
  expect_answer(sane_echo, NULL, 0);

  /* Sent with LF alone, it is a program's request and is answered; an empty line right
   * after it (answered) shows that it was an echo after all (a tty with `-opost`), so the
   * echoes of both answers are not answered; `10` is then a request again. */
  expect_answer(g_echo.request, g_echo.answer, g_echo.answer_len);
  expect_answer("\n", k_err1, sizeof k_err1 - 1);
  expect_answer(g_lf.request, NULL, 0);
  expect_answer("ERR 1 empty line\n\n", NULL, 0);
  expect_answer(g_ten.request, g_ten.answer, g_ten.answer_len);
  return 0;
}
