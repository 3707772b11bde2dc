/* The portable core's unit test, in process: app.c, protocol.c and decimal.c linked with
 * this file's own engine and its own model header (tests/model_info.h: 2 inputs, 2
 * outputs, fixed constants), so every expected answer below is a literal that no newly
 * emitted model can change. Request lines go in through app_feed as bytes, answers come
 * back through the write callback, and each is compared byte for byte; then the decimal
 * unit's exactness cases (parse and format, subnormals, ties, huge exponents, -0,
 * refusals). Host-only test code, so stdio is fine.
 *
 *   cmake -S firmware -B build/core-test && cmake --build build/core-test --target core_test
 *   build/core-test/core_test                exit 0: every check passed
 *   build/core-test/core_test --fail-one     adds one wrong expectation: must exit 1
 *
 * tests/test_core_unit.py builds and runs both.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "decimal.h"
#include "engine.h"

/* ---- checks ------------------------------------------------------------------------ */

static unsigned g_checks;
static unsigned g_failures;

/* Prints s with control and non-ASCII bytes escaped, so a failure shows CR, LF and NUL. */
static void print_escaped(const char *s, size_t n) {
  size_t i;
  putchar('"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') {
      fputs("\\r", stdout);
    } else if (c == '\n') {
      fputs("\\n", stdout);
    } else if (c == '"' || c == '\\') {
      printf("\\%c", c);
    } else if (c < 0x20 || c > 0x7e) {
      printf("\\x%02x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static void expect_bytes(int line, const char *what, const char *got, size_t got_len,
                         const char *want, size_t want_len) {
  g_checks++;
  if (got_len == want_len && memcmp(got, want, got_len) == 0) return;
  g_failures++;
  printf("FAIL core_test.c:%d: %s\n  got  ", line, what);
  print_escaped(got, got_len);
  printf("\n  want ");
  print_escaped(want, want_len);
  putchar('\n');
}

static void expect_true(int line, const char *what, int ok) {
  g_checks++;
  if (ok) return;
  g_failures++;
  printf("FAIL core_test.c:%d: %s\n", line, what);
}

#define EXPECT_STR(what, got, want) expect_bytes(__LINE__, what, got, strlen(got), want, strlen(want))
#define EXPECT_TRUE(cond) expect_true(__LINE__, #cond, (cond) != 0)

/* ---- the test's engine ---------------------------------------------------------------- */

/* out0 = in0, out1 = in0 + in1 saturated to int8: answers that are easy to check by
 * hand, with saturation on the way. Failures are switched on by the tests. */
static int g_init_fails;
static int g_invoke_fails;
static const char *g_engine_error = "";
static unsigned long g_invokes;
static int8_t g_last_input[MODEL_INPUT_COUNT];

int engine_init(void) {
  if (!g_init_fails) return 0;
  g_engine_error = "AllocateTensors failed";
  return -1;
}

int engine_invoke(const int8_t *input, int8_t *output) {
  g_invokes++;
  memcpy(g_last_input, input, sizeof g_last_input);
  if (g_invoke_fails) return -1;
#if MODEL_INPUT_COUNT == 2
  {
    int sum = input[0] + input[1];
    output[0] = input[0];
    output[1] = (int8_t)(sum > 127 ? 127 : sum < -128 ? -128 : sum);
  }
#else
  { /* the wide build (tests/wide/model_info.h): the last inputs, last first */
    size_t j;
    for (j = 0; j < MODEL_OUTPUT_COUNT; j++) output[j] = input[MODEL_INPUT_COUNT - 1 - j];
  }
#endif
  return 0;
}

const char *engine_name(void) { return "test"; }

size_t engine_arena_used(void) { return 48; }

const char *engine_error(void) { return g_engine_error; }

/* ---- a device in memory ----------------------------------------------------------------- */

static app_t g_app;
static char g_sent[65536];
static size_t g_sent_len;
static size_t g_pieces;    /* writes since the last feed */
static size_t g_piece_max; /* the longest of them */
static uint32_t g_clock;

static void sink(void *ctx, const uint8_t *bytes, size_t n) {
  (void)ctx;
  g_pieces++;
  if (n > g_piece_max) g_piece_max = n;
  if (n > sizeof g_sent - 1 - g_sent_len) n = sizeof g_sent - 1 - g_sent_len;
  memcpy(g_sent + g_sent_len, bytes, n);
  g_sent_len += n;
}

static uint32_t fake_micros(void) { return g_clock += 5u; } /* bench reports us=5 */

/* A freshly started device; with_clock 0 is a platform without a clock. */
static void fresh_device(int with_clock) {
  app_init(&g_app, sink, NULL, with_clock ? fake_micros : NULL);
  g_clock = 0;
}

/* Feeds n bytes and returns everything the device sent in reply (NUL-terminated). */
static const char *feed(const char *bytes, size_t n) {
  g_sent_len = 0;
  g_pieces = g_piece_max = 0;
  app_feed(&g_app, (const uint8_t *)bytes, n);
  g_sent[g_sent_len] = '\0';
  return g_sent;
}

/* Feeds n bytes; what the device sends back must be want, byte for byte. */
static void exchange(int line, const char *what, const char *request, size_t n, const char *want) {
  const char *got = feed(request, n);
  expect_bytes(line, what, got, g_sent_len, want, strlen(want));
  expect_true(line, "every write at most APP_OUT_CHUNK bytes", g_piece_max <= APP_OUT_CHUNK);
}

#define EXCHANGE(request, want) exchange(__LINE__, "answer to " #request, request, sizeof request - 1, want)

/* The spec's own text (docs/protocol.md), not one built from PROTO_LINE_MAX. */
#define TOO_LONG "ERR 2 line too long (max 128 bytes)\r\n"
#define HELP "help: X1 [X2 ...] | q C1 [C2 ...] | id | bench N | help\r\n"
#define ID                                                                                  \
  "id proto=1 model=c0ffee012345 engine=test inputs=2 outputs=2 in_scale=0.5 in_zp=-10 " \
  "out_scale=0.1 out_zp=3 range=-2:30 arena=48\r\n"
#define ID_WIDE                                                                               \
  "id proto=1 model=c0ffee012345 engine=test inputs=1024 outputs=40 in_scale=0.5 in_zp=-10 " \
  "out_scale=0.1 out_zp=3 range=-2:30 arena=48\r\n"

/* ---- the core ------------------------------------------------------------------------ */

static void test_queries(void) {
  fresh_device(1);
  EXCHANGE("id\n", ID);
  EXCHANGE("?\n", ID);
  EXCHANGE("help\n", HELP);
  /* 10 / 0.5 - 10 = code 10 -> (10 - 3) * 0.1; 4 -> code -2, out1 = 8 -> 0.5 */
  EXCHANGE("10 4\n", "0.7 0.5\r\n");
  EXCHANGE("10,4\n", "0.7 0.5\r\n");
  EXCHANGE(" \t10 ,, 4\t\n", "0.7 0.5\r\n");
  EXCHANGE("1e1 +.4e1\n", "0.7 0.5\r\n");
  EXCHANGE("0.25 -0.25\n", "-1.2 -2.3\r\n"); /* x / scale = +-0.5: half away from zero */
  EXCHANGE("-0 0\n", "-1.3 -2.3\r\n");       /* -0 is a number: the zero point */
  EXCHANGE("31 0\n", "4.9 3.9 clipped\r\n"); /* above the range 30: answered, flagged */
  EXCHANGE("-2 30\n", "-1.7 3.3\r\n");       /* the range's own ends are not clipped */
  EXCHANGE("1e30 -1e30\n", "12.4 -0.4 clipped\r\n"); /* saturated to 127 and -128 */
  EXCHANGE("q 100 100\n", "q 100 127\r\n");
  EXCHANGE("q -128 -1\n", "q -128 -128\r\n");
  EXCHANGE("q +5 -0\n", "q 5 5\r\n");
  EXCHANGE("q 127 0\n", "q 127 127\r\n");
}

#if MODEL_CLASS_COUNT > 0
/* The classifier build: value answers end with the top label, id says the task, and
 * `labels` lists the labels as sent. */
static void test_classifier(void) {
  fresh_device(1);
  EXCHANGE("id\n", "id proto=1 model=c0ffee012345 engine=test inputs=2 outputs=2 in_scale=0.5 in_zp=-10 "
                   "out_scale=0.1 out_zp=3 range=-2:30 arena=48 task=classify classes=2\r\n");
  EXCHANGE("help\n", "help: X1 [X2 ...] | q C1 [C2 ...] | id | labels | bench N | help\r\n");
  EXCHANGE("labels\n", "labels cat red%20fox\r\n");
  EXCHANGE("labels x\n", "ERR 8 labels takes no arguments\r\n");
  EXCHANGE("10 4\n", "0.7 0.5 cat\r\n");        /* codes 10 and 8 */
  EXCHANGE("0 10\n", "-1.3 -0.3 red%20fox\r\n"); /* codes -10 and 0 */
  EXCHANGE("10 5\n", "0.7 0.7 cat\r\n");        /* a tie, 10 and 10: the lower index */
  EXCHANGE("31 5\n", "4.9 4.9 cat clipped\r\n");
  EXCHANGE("q 1 2\n", "q 1 3\r\n"); /* codes answer as for any model */
}
#endif

static void test_errors(void) {
  fresh_device(1);
  EXCHANGE("\n", "ERR 1 empty line\r\n");
  EXCHANGE(" ,\t,\n", "ERR 1 empty line\r\n");
  EXCHANGE("1\n", "ERR 4 expected 2 values, got 1\r\n");
  EXCHANGE("1 2 3\n", "ERR 4 expected 2 values, got 3\r\n");
  EXCHANGE("q 1\n", "ERR 4 expected 2 codes, got 1\r\n");
  EXCHANGE("q\n", "ERR 4 expected 2 codes, got 0\r\n");
  EXCHANGE("1 x\n", "ERR 3 bad number at field 2\r\n");
  EXCHANGE("1 2 x\n", "ERR 3 bad number at field 3\r\n");
  EXCHANGE("1e39 1\n", "ERR 3 bad number at field 1\r\n");
  EXCHANGE("0x10 1\n", "ERR 3 bad number at field 1\r\n");
  EXCHANGE("1.2.3 1\n", "ERR 3 bad number at field 1\r\n");
  EXCHANGE("\x80\x01 1\n", "ERR 3 bad number at field 1\r\n");
  EXCHANGE("1 \0\n", "ERR 3 bad number at field 2\r\n");
  EXCHANGE("q 1 128\n", "ERR 5 bad code at field 2\r\n");
  EXCHANGE("q 1.5 1\n", "ERR 5 bad code at field 1\r\n");
  EXCHANGE("q -129 1\n", "ERR 5 bad code at field 1\r\n");
  EXCHANGE("ten\n", "ERR 6 unknown command (try help)\r\n");
  EXCHANGE("ID\n", "ERR 6 unknown command (try help)\r\n");
  EXCHANGE("nan 1\n", "ERR 6 unknown command (try help)\r\n");
  EXCHANGE("inf 1\n", "ERR 6 unknown command (try help)\r\n");
  EXCHANGE("id x\n", "ERR 8 id takes no arguments\r\n");
  EXCHANGE("? 1\n", "ERR 8 id takes no arguments\r\n");
  EXCHANGE("help me\n", "ERR 8 help takes no arguments\r\n");
  EXCHANGE("10 4\n", "0.7 0.5\r\n"); /* nothing above changed a later answer */
}

static void test_bench(void) {
  fresh_device(1);
  g_invokes = 0;
  EXCHANGE("bench 3\n", "bench n=3 us=5\r\n");
  EXPECT_TRUE(g_invokes == 3);
  EXPECT_TRUE(g_last_input[0] == -10 && g_last_input[1] == -10); /* x = 0: the zero point */
  EXCHANGE("bench 0\n", "ERR 8 bench N needs 1 <= N <= 1000000\r\n");
  EXCHANGE("bench 1000001\n", "ERR 8 bench N needs 1 <= N <= 1000000\r\n");
  EXCHANGE("bench\n", "ERR 8 bench N needs 1 <= N <= 1000000\r\n");
  EXCHANGE("bench 2 3\n", "ERR 8 bench N needs 1 <= N <= 1000000\r\n");
  EXCHANGE("bench x\n", "ERR 8 bench N needs 1 <= N <= 1000000\r\n");
  fresh_device(0);
  EXCHANGE("bench 3\n", "ERR 8 bench needs a platform clock\r\n");
}

static void test_engine_failure(void) {
  g_init_fails = 1;
  fresh_device(1);
  EXCHANGE("10 4\n", "ERR 7 engine: AllocateTensors failed\r\n");
  EXCHANGE("q 1 1\n", "ERR 7 engine: AllocateTensors failed\r\n");
  EXCHANGE("bench 1\n", "ERR 7 engine: AllocateTensors failed\r\n");
  EXCHANGE("id\n", ID); /* identity, help and errors still work */
  EXCHANGE("help\n", HELP);
  EXCHANGE("1\n", "ERR 4 expected 2 values, got 1\r\n");
  g_init_fails = 0; /* retried on the next query */
  EXCHANGE("10 4\n", "0.7 0.5\r\n");
  g_invoke_fails = 1;
  g_engine_error = "Invoke\tfailed\x01"; /* quoted printable, so the line stays one line */
  EXCHANGE("10 4\n", "ERR 7 engine: Invoke?failed?\r\n");
  g_engine_error = "";
  EXCHANGE("q 1 1\n", "ERR 7 engine: unknown failure\r\n");
  g_invoke_fails = 0;
  EXCHANGE("10 4\n", "0.7 0.5\r\n");
}

static void test_line_editing(void) {
  char line[200];
  fresh_device(1);
  EXCHANGE("10 40\b\n", "0.7 0.5\r\n");     /* Backspace deletes the last byte */
  EXCHANGE("10 4\x7f" "5\n", "0.7 0.7\r\n"); /* so does DEL: 10 5 */
  EXCHANGE("\b\x7f" "10 4\n", "0.7 0.5\r\n"); /* at the start of a line: nothing */
  EXCHANGE("10 4\r\b\n", "0.7 0.5\r\n");    /* never into an answered line, nor a CRLF */
  EXCHANGE("10 4\r\n\r\n", "0.7 0.5\r\nERR 1 empty line\r\n"); /* CRLF counts once */
  EXCHANGE("10 4\r10 4\n10 4\r\n", "0.7 0.5\r\n0.7 0.5\r\n0.7 0.5\r\n");
  EXCHANGE("10", "");
  EXCHANGE(" 4", ""); /* a partial line: nothing until its ending */
  EXCHANGE("\r", "0.7 0.5\r\n");
  EXCHANGE("\n", ""); /* the LF of that CRLF */

  /* 128 bytes is the stored limit; a longer query is parsed as it arrives, and answered */
  memset(line, ' ', sizeof line);
  memcpy(line, "10", 2);
  line[PROTO_LINE_MAX - 1] = '4';
  line[PROTO_LINE_MAX] = '\n';
  exchange(__LINE__, "a line of 128 bytes", line, PROTO_LINE_MAX + 1, "0.7 0.5\r\n");
  memset(line, ' ', sizeof line);
  memcpy(line, "10", 2);
  line[PROTO_LINE_MAX] = '4';
  line[PROTO_LINE_MAX + 1] = '\n';
  exchange(__LINE__, "a query of 129 bytes", line, PROTO_LINE_MAX + 2, "0.7 0.5\r\n");
  line[PROTO_LINE_MAX] = '1';
  line[PROTO_LINE_MAX + 1] = '5';
  line[PROTO_LINE_MAX + 2] = '\n';
  exchange(__LINE__, "130 bytes: the last field is 15", line, PROTO_LINE_MAX + 3, "0.7 2.7\r\n");
  line[PROTO_LINE_MAX + 2] = '\b';
  line[PROTO_LINE_MAX + 3] = '\n';
  exchange(__LINE__, "130 bytes, Backspace: 1", line, PROTO_LINE_MAX + 4, "0.7 -0.1\r\n");
  /* a field of 129 bytes cannot be a number: bad at its field, whatever follows */
  memset(line, '1', sizeof line);
  line[PROTO_LINE_MAX + 1] = '\n';
  exchange(__LINE__, "a field of 129 bytes", line, PROTO_LINE_MAX + 2, "ERR 3 bad number at field 1\r\n");
  line[PROTO_LINE_MAX + 1] = '\b';
  line[PROTO_LINE_MAX + 2] = '\n';
  exchange(__LINE__, "129 bytes, then Backspace", line, PROTO_LINE_MAX + 3, "ERR 3 bad number at field 1\r\n");
  memset(line, '1', sizeof line);
  line[198] = '\r';
  line[199] = '\n';
  exchange(__LINE__, "198 bytes, one answer at its end", line, 200, "ERR 3 bad number at field 1\r\n");
  /* commands keep the limit: a longer one is ERR 2, once, at its end */
  memset(line, 'a', sizeof line);
  line[PROTO_LINE_MAX + 1] = '\n';
  exchange(__LINE__, "a command word of 129 bytes", line, PROTO_LINE_MAX + 2, TOO_LONG);
  memset(line, ' ', sizeof line);
  memcpy(line, "help", 4);
  line[198] = '\r';
  line[199] = '\n';
  exchange(__LINE__, "help and 194 blanks", line, 200, TOO_LONG);
  line[0] = ' ';
  line[PROTO_LINE_MAX + 1] = '\b';
  exchange(__LINE__, "blanks and a Backspace", line, 200, TOO_LONG); /* not a query */
  EXCHANGE("10 4\n", "0.7 0.5\r\n");
}

static void test_echo(void) {
  char out[16];
  size_t i;
  fresh_device(1);
  EXCHANGE("10 4\r", "0.7 0.5\r\n");
  EXCHANGE("0.7 0.5\r\n", "");            /* a tty's echo of that answer: not answered */
  EXCHANGE("0.7 0.5\n", "-1.2 -2.1\r\n"); /* LF-ended: a program's request, answered */
  EXCHANGE(" 0.7 0.5\r", "-1.2 -2.1\r\n"); /* a leading space is never an echo */
  EXCHANGE("ERR 9\n", "ERR 6 unknown command (try help)\r\n");
  EXCHANGE("ERR 6 unknown command (try help)\n", ""); /* an error line is always an echo */
  EXCHANGE("id\n", ID);
  EXPECT_TRUE(sizeof ID - 1 > APP_OUT_CHUNK && g_pieces == 2); /* formatted as it is sent */
  EXCHANGE(ID, ""); /* its echo, remembered whole */

  /* the echo memory: the last APP_ECHO_LINES answers */
  fresh_device(1);
  EXCHANGE("10 4\r", "0.7 0.5\r\n");
  for (i = 1; i < APP_ECHO_LINES; i++) EXCHANGE("help\r", HELP);
  EXCHANGE("0.7 0.5\r", ""); /* the oldest answer remembered */
  EXCHANGE("help\r", HELP);
  EXCHANGE("0.7 0.5\r", "-1.2 -2.1\r\n"); /* one answer later, forgotten: a request */

  /* app_respond keeps CRLF however small the buffer */
  EXPECT_TRUE(app_respond(&g_app, "help", 4, out, 8) == 8 && memcmp(out, "help: \r\n", 8) == 0);
}

#if MODEL_INPUT_COUNT > 2
/* ---- the wide build: queries far longer than the stored line -------------------------- */

static char g_line[65536];
static size_t g_line_len;
static int8_t g_want[MODEL_INPUT_COUNT];

static void line_reset(void) { g_line_len = 0; }

static void line_add(const char *text, size_t n) {
  if (n > sizeof g_line - g_line_len) n = sizeof g_line - g_line_len;
  memcpy(g_line + g_line_len, text, n);
  g_line_len += n;
}

static void line_str(const char *text) { line_add(text, strlen(text)); }

static void line_repeat(char c, size_t n) {
  while (n-- > 0) line_add(&c, 1);
}

/* A value query of `count` fields: field i is i % 16, with .5 on every odd one (never
 * clipped: the range is -2..30); g_want gets the codes of the first MODEL_INPUT_COUNT. */
static void values_line(size_t count) {
  size_t i;
  line_reset();
  for (i = 0; i < count; i++) {
    char text[16];
    int whole = (int)(i % 16);
    snprintf(text, sizeof text, i % 2 ? "%s%d.5" : "%s%d", i ? " " : "", whole);
    line_str(text);
    if (i < MODEL_INPUT_COUNT) g_want[i] = (int8_t)(2 * whole + (int)(i % 2) - 10); /* x / 0.5 - 10 */
  }
}

/* `q` with `count` codes spread over -128..127, seeded by `seed`. */
static void codes_line(size_t count, unsigned seed) {
  size_t i;
  line_reset();
  line_str("q");
  for (i = 0; i < count; i++) {
    char text[8];
    int code = (int)((i * 37u + seed) % 256u) - 128;
    snprintf(text, sizeof text, " %d", code);
    line_str(text);
    if (i < MODEL_INPUT_COUNT) g_want[i] = (int8_t)code;
  }
}

/* What the test engine answers for g_want: as values (`(code - 3) * 0.1`) or as `q`. */
static const char *wide_answer(int codes) {
  static char text[4096];
  size_t n = 0;
  size_t j;
  if (codes) n += (size_t)snprintf(text, sizeof text, "q");
  for (j = 0; j < MODEL_OUTPUT_COUNT; j++) {
    int k = g_want[MODEL_INPUT_COUNT - 1 - j];
    if (codes) {
      n += (size_t)snprintf(text + n, sizeof text - n, " %d", k);
    } else {
      char v[16];
      size_t vl;
      int t = k - 3;
      snprintf(v, sizeof v, "%s%d.%d", t < 0 ? "-" : "", (t < 0 ? -t : t) / 10, (t < 0 ? -t : t) % 10);
      vl = strlen(v);
      if (vl >= 2 && memcmp(v + vl - 2, ".0", 2) == 0) v[vl - 2] = '\0'; /* 2.0 -> 2 */
      if (strcmp(v, "-0") == 0) strcpy(v, "0");
      n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", j ? " " : "", v);
    }
  }
  snprintf(text + n, sizeof text - n, "\r\n");
  return text;
}

/* Feeds the line (with `ending`) in one write, byte by byte, and split in two at every
 * byte: each time exactly one answer, `want`, at the line's end. */
static void wide_exchange(int line, const char *what, const char *ending, const char *want, int every_split) {
  static char both[sizeof g_sent];
  size_t kept = g_line_len;
  size_t n;
  size_t k;
  line_str(ending);
  n = g_line_len;
  g_line_len = kept; /* the line stays without its ending for the next edit */
  exchange(line, what, g_line, n, want);
  g_sent_len = 0;
  for (k = 0; k < n; k++) app_feed(&g_app, (const uint8_t *)g_line + k, 1);
  g_sent[g_sent_len] = '\0';
  expect_bytes(line, "the same, byte by byte", g_sent, g_sent_len, want, strlen(want));
  if (!every_split) return;
  for (k = 1; k < n; k++) {
    size_t first;
    feed(g_line, k);
    first = g_sent_len;
    memcpy(both, g_sent, first);
    feed(g_line + k, n - k);
    memcpy(both + first, g_sent, g_sent_len);
    if (first + g_sent_len != strlen(want) || memcmp(both, want, first + g_sent_len) != 0) {
      printf("  (split at byte %lu of %lu)\n", (unsigned long)k, (unsigned long)n);
      expect_bytes(line, "split in two", both, first + g_sent_len, want, strlen(want));
      return;
    }
  }
  g_checks++;
}

#define WIDE(what, ending, want, every_split) wide_exchange(__LINE__, what, ending, want, every_split)
#define WIDE_INPUT_IS_WANT() EXPECT_TRUE(memcmp(g_last_input, g_want, sizeof g_want) == 0)

static void test_wide(void) {
  char want[4096];
  char answer1[4096];
  char answer2[4096];
  fresh_device(1);

  /* every field, parsed as it arrives, straight into the input */
  values_line(MODEL_INPUT_COUNT);
  EXPECT_TRUE(g_line_len > 2000);
  WIDE("1024 values", "\n", wide_answer(0), 1);
  WIDE_INPUT_IS_WANT();
  codes_line(MODEL_INPUT_COUNT, 5);
  WIDE("q and 1024 codes", "\r\n", wide_answer(1), 1);
  WIDE_INPUT_IS_WANT();
  codes_line(MODEL_INPUT_COUNT, 11);
  WIDE("q, CR alone", "\r", wide_answer(1), 0);
  WIDE_INPUT_IS_WANT();

  /* counts: every field counted, far past the model's inputs */
  values_line(MODEL_INPUT_COUNT + 1);
  WIDE("1025 values", "\n", "ERR 4 expected 1024 values, got 1025\r\n", 0);
  values_line(3000);
  WIDE("3000 values", "\n", "ERR 4 expected 1024 values, got 3000\r\n", 0);
  values_line(MODEL_INPUT_COUNT - 1);
  WIDE("1023 values", "\n", "ERR 4 expected 1024 values, got 1023\r\n", 0);
  codes_line(MODEL_INPUT_COUNT + 1, 0);
  WIDE("1025 codes", "\n", "ERR 4 expected 1024 codes, got 1025\r\n", 0);
  line_reset();
  line_repeat(' ', 200);
  line_str("q ,");
  WIDE("blanks, then q alone", "\n", "ERR 4 expected 1024 codes, got 0\r\n", 0);
  line_reset();
  line_repeat(',', 150);
  values_line(MODEL_INPUT_COUNT); /* (starts the line again) */
  memmove(g_line + 150, g_line, g_line_len);
  memset(g_line, ',', 150);
  g_line_len += 150;
  WIDE("150 separators first", "\n", wide_answer(0), 0);

  /* the first bad field is the answer, before the count */
  values_line(1030);
  g_line[strlen("0 1.5 2 3.5") ] = 'x'; /* field 4 becomes "3.5x" */
  WIDE("a bad number at field 4 of 1030", "\n", "ERR 3 bad number at field 4\r\n", 0);
  values_line(1030);
  line_str(" 1e39");
  WIDE("a bad number at field 1031", "\n", "ERR 3 bad number at field 1031\r\n", 0);
  codes_line(MODEL_INPUT_COUNT, 0);
  line_str(" 128");
  WIDE("a bad code at field 1025", "\n", "ERR 5 bad code at field 1025\r\n", 0);
  codes_line(10, 0);
  line_str(" -129");
  line_repeat(' ', 200);
  WIDE("a bad code at field 11", "\n", "ERR 5 bad code at field 11\r\n", 0);

  /* a field holds at most 128 bytes: 128 zeros are 0, 129 are a bad number */
  values_line(MODEL_INPUT_COUNT);
  memmove(g_line + 128, g_line, g_line_len);
  memset(g_line, '0', 128); /* field 1, "0" before: now 129 zeros */
  g_line_len += 128;
  WIDE("129 zeros in field 1", "\n", "ERR 3 bad number at field 1\r\n", 0);
  memmove(g_line, g_line + 1, --g_line_len);
  WIDE("128 zeros in field 1", "\n", wide_answer(0), 0);
  WIDE_INPUT_IS_WANT();
  codes_line(4, 0);
  line_str(" ");
  line_repeat('7', 300);
  line_str("\b\b\b\b\b 1");
  WIDE("300 digits, Backspace cannot shorten them", "\n", "ERR 5 bad code at field 5\r\n", 0);

  /* Backspace in a long line: the last byte of the field being typed; after a separator,
   * nothing (the fields before are parsed already) */
  values_line(MODEL_INPUT_COUNT);
  strcpy(want, wide_answer(0));
  {
    size_t at = g_line_len - 1; /* field 1024 is "15.5": the last byte, 5, is retyped */
    g_line_len = at;
    line_str("9\b5");
  }
  WIDE("Backspace in the last field", "\n", want, 1);
  WIDE_INPUT_IS_WANT();
  values_line(MODEL_INPUT_COUNT - 1);
  line_str(" \b\b\b15\b\b\b\b\b" "15.5"); /* field 1024: 15 deleted, then retyped */
  WIDE("Backspace after a separator does nothing", "\n", want, 0);
  WIDE_INPUT_IS_WANT();
  values_line(MODEL_INPUT_COUNT - 2); /* ends "... 14" */
  line_str(" \b15.5");                 /* not "1415.5": the separator stays */
  WIDE("two fields stay two", "\n", "ERR 4 expected 1024 values, got 1023\r\n", 0);
  values_line(MODEL_INPUT_COUNT);
  memmove(g_line + 3, g_line, g_line_len);
  memcpy(g_line, "1 \b", 3); /* before byte 128 the stored line is edited: "10 1.5 ..." */
  g_line_len += 3;
  g_want[0] = 2 * 10 - 10;
  WIDE("Backspace in the stored part", "\n", want, 0);
  WIDE_INPUT_IS_WANT();

  /* commands keep their limit */
  line_reset();
  line_str("id");
  line_repeat(' ', 200);
  WIDE("id and 200 blanks", "\n", TOO_LONG, 0);
  line_reset();
  line_repeat(' ', 300);
  WIDE("300 blanks", "\n", TOO_LONG, 0);
  line_reset();
  line_str("qq");
  line_repeat(' ', 200);
  line_str("1");
  WIDE("qq and a code", "\n", TOO_LONG, 0);
  values_line(3);
  WIDE("a short value query", "\n", "ERR 4 expected 1024 values, got 3\r\n", 0);

  /* echoes of answers longer than 128 bytes: matched as they arrive, never stored */
  codes_line(MODEL_INPUT_COUNT, 1);
  WIDE("a query", "\n", wide_answer(1), 0);
  strcpy(answer1, wide_answer(1));
  EXPECT_TRUE(strlen(answer1) > PROTO_LINE_MAX + 2);
  g_want[MODEL_INPUT_COUNT - MODEL_OUTPUT_COUNT] ^= 0x40; /* another last output code */
  {
    size_t i;
    char code[8];
    line_reset();
    line_str("q");
    for (i = 0; i < MODEL_INPUT_COUNT; i++) {
      snprintf(code, sizeof code, " %d", g_want[i]);
      line_str(code);
    }
  }
  WIDE("a query whose answer differs only at its end", "\n", wide_answer(1), 0);
  strcpy(answer2, wide_answer(1));
  EXPECT_TRUE(strncmp(answer1, answer2, strlen(answer1) - 8) == 0 && strcmp(answer1, answer2) != 0);
  line_reset();
  line_add(answer2, strlen(answer2));
  exchange(__LINE__, "the echo of the second answer (a tty with echo on)", g_line, g_line_len, "");
  line_reset();
  line_add(answer1, strlen(answer1) - 2);
  line_str("\r");
  exchange(__LINE__, "the echo of the first", g_line, g_line_len, "");
  line_reset();
  line_add(answer1, strlen(answer1) - 2);
  line_str("\n");
  exchange(__LINE__, "the first again, LF-ended: a request", g_line, g_line_len,
           "ERR 4 expected 1024 codes, got 40\r\n");
  line_reset();
  line_add(answer1, strlen(answer1) - 3); /* one byte short: "... -71" is "... -7", answer2 */
  line_str("\r");
  EXPECT_TRUE(g_line_len == strlen(answer2) - 1 && memcmp(g_line, answer2, g_line_len - 1) == 0);
  exchange(__LINE__, "one byte short of the first answer: the second's echo", g_line, g_line_len, "");
  line_reset();
  line_add(answer1, strlen(answer1) - 4); /* two bytes short */
  line_str("\r");
  exchange(__LINE__, "two bytes short of an answer", g_line, g_line_len, "ERR 5 bad code at field 40\r\n");
  line_reset();
  line_add(answer2, strlen(answer2) - 2);
  line_str("x\r");
  exchange(__LINE__, "one byte past an answer", g_line, g_line_len, "ERR 5 bad code at field 40\r\n");
  {
    char last[2] = {answer2[strlen(answer2) - 3], '\0'};
    char other[2] = {last[0] == '0' ? '1' : '0', '\0'};
    line_reset();
    line_add(answer2, strlen(answer2) - 2);
    line_str("\b");
    line_str(last);
    line_str("\r"); /* Backspace and the same byte again: the echo, byte for byte */
    exchange(__LINE__, "an echo with its last byte retyped", g_line, g_line_len, "");
    line_reset();
    line_add(answer2, strlen(answer2) - 2);
    line_str("\b");
    line_str(other);
    line_str("\r");
    exchange(__LINE__, "an echo edited into a request", g_line, g_line_len, "ERR 4 expected 1024 codes, got 40\r\n");
  }
  values_line(MODEL_INPUT_COUNT);
  WIDE("a value query", "\n", wide_answer(0), 0);
  strcpy(answer1, wide_answer(0));
  line_reset();
  line_add(answer1, strlen(answer1));
  exchange(__LINE__, "the echo of a long value answer", g_line, g_line_len, "");
  EXCHANGE("id\n", ID_WIDE);
  EXPECT_TRUE(strlen(ID_WIDE) > PROTO_LINE_MAX + 2);
  EXCHANGE(ID_WIDE, ""); /* the echo of `id`, a command longer than 128 bytes */
  EXCHANGE("\n", "");     /* and the empty line right after it: the tty's second ending */
  line_reset();
  line_add(ID_WIDE, strlen(ID_WIDE) - 2);
  line_str("\n");
  exchange(__LINE__, "id's answer LF-ended: a request, too long", g_line, g_line_len, TOO_LONG);

  values_line(MODEL_INPUT_COUNT);
  WIDE("the next query is answered", "\n", wide_answer(0), 0);
  WIDE_INPUT_IS_WANT();
}
#endif

/* Deliberately wrong: proves that a wrong answer fails the program (--fail-one). */
static void test_wrong_expectation(void) {
  fresh_device(1);
  EXCHANGE("10 4\n", "0.7 0.6\r\n");
}

/* ---- the decimal unit ----------------------------------------------------------------------- */

static float from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static uint32_t to_bits(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return bits;
}

static void expect_parse(int line, const char *text, uint32_t want) {
  float got = from_bits(0x7fc01234u);
  int rc = dec_parse_float(text, strlen(text), &got);
  g_checks++;
  if (rc == 0 && to_bits(got) == want) return;
  g_failures++;
  printf("FAIL core_test.c:%d: parse ", line);
  print_escaped(text, strlen(text));
  printf(": rc %d, bits 0x%08lx, want 0x%08lx\n", rc, (unsigned long)to_bits(got), (unsigned long)want);
}

static void expect_refused(int line, const char *text) {
  float got = from_bits(0x7fc01234u);
  int rc = dec_parse_float(text, strlen(text), &got);
  g_checks++;
  if (rc != 0 && to_bits(got) == 0x7fc01234u) return; /* refused, *out untouched */
  g_failures++;
  printf("FAIL core_test.c:%d: parse ", line);
  print_escaped(text, strlen(text));
  printf(": accepted as 0x%08lx, want a refusal\n", (unsigned long)to_bits(got));
}

#define PARSE(text, bits) expect_parse(__LINE__, text, bits)
#define REFUSE(text) expect_refused(__LINE__, text)

static void test_decimal_parse(void) {
  char long_text[300];
  float f = 0.0f;
  PARSE("0.1", 0x3dcccccdu);
  PARSE("10", 0x41200000u);
  PARSE(".5", 0x3f000000u);
  PARSE("5.", 0x40a00000u);
  PARSE("1E2", 0x42c80000u);
  PARSE("+1.5e+1", 0x41700000u);
  PARSE("0.050980393", 0x3d50d0d1u);
  /* -0 keeps its sign; zero mantissas are zero whatever the exponent */
  PARSE("-0", 0x80000000u);
  PARSE("+0", 0x00000000u);
  PARSE("-0.000e-5", 0x80000000u);
  PARSE("0e99999999999999999999", 0x00000000u);
  /* subnormals: 2^-149 is the smallest; half of it rounds to 0 (even), more rounds up */
  PARSE("1e-45", 0x00000001u);
  PARSE("7.006e-46", 0x00000000u);
  PARSE("7.0065e-46", 0x00000001u);
  PARSE("-7.0065e-46", 0x80000001u);
  PARSE("7.00649232162408535461864791644958065640130970938257885878534141944895541342930300743319094181060791015625e-46",
        0x00000000u);
  PARSE("7.006492321624085354618647916449580656401309709382578858785341419448955413429303007433190941810607910156251e-46",
        0x00000001u);
  /* 3 * 2^-150, the tie between 1 and 2 units: to even */
  PARSE("2.101947696487225606385594374934874196920392912814773657635602425834686624028790902229957282543182373046875e-45",
        0x00000002u);
  PARSE("1.1754942e-38", 0x007fffffu); /* largest subnormal */
  PARSE("1.1754944e-38", 0x00800000u); /* FLT_MIN */
  PARSE("1e-99999999999", 0x00000000u);
  /* ties between neighbours 2 apart at 2^24: to the even mantissa */
  PARSE("16777217", 0x4b800000u);
  PARSE("16777219", 0x4b800002u);
  PARSE("16777217.000000000000000000000001", 0x4b800001u);
  PARSE("16777216.999999999999999999999999", 0x4b800000u);
  /* the top: FLT_MAX, and the midpoint to 2^128, which rounds (to even) to infinity */
  PARSE("3.4028235e38", 0x7f7fffffu);
  PARSE("340282346638528859811704183484516925440", 0x7f7fffffu);
  PARSE("340282356779733661637539395458142568447.999", 0x7f7fffffu);
  REFUSE("340282356779733661637539395458142568448");
  REFUSE("3.5e38");
  REFUSE("1e39");
  REFUSE("-1e39");
  REFUSE("1e99999999999");
  /* many digits: 1 followed by 200 zeros, times 10^-200 */
  memset(long_text, '0', sizeof long_text);
  long_text[0] = '1';
  memcpy(long_text + 201, "e-200", 6);
  PARSE(long_text, 0x3f800000u);
  memcpy(long_text, "0.", 2); /* 0.000...01e200 with the 1 at digit 199 */
  long_text[200] = '1';
  memcpy(long_text + 201, "e199", 5);
  PARSE(long_text, 0x3f800000u);
  /* not numbers in the protocol's grammar */
  REFUSE("");
  REFUSE("+");
  REFUSE("-");
  REFUSE(".");
  REFUSE("e5");
  REFUSE("1e");
  REFUSE("1e+");
  REFUSE("nan");
  REFUSE("NaN");
  REFUSE("inf");
  REFUSE("-inf");
  REFUSE("infinity");
  REFUSE("0x10");
  REFUSE("1.2.3");
  REFUSE("1e5.0");
  REFUSE("--1");
  REFUSE(" 1");
  REFUSE("1 ");
  REFUSE("1,5");
  REFUSE("1_000");
  REFUSE("\xd9\xa1"); /* a non-ASCII digit */
  /* only n bytes are read */
  EXPECT_TRUE(dec_parse_float("10x", 2, &f) == 0 && f == 10.0f);
  EXPECT_TRUE(dec_parse_float(NULL, 0, &f) != 0);
}

static void expect_text(int line, const char *what, const char *got, size_t len, const char *want) {
  char label[64];
  snprintf(label, sizeof label, "%s, returned length", what);
  expect_bytes(line, what, got, strlen(got), want, strlen(want));
  expect_true(line, label, len == strlen(got));
}

#define VALUE(f, want)                                              \
  do {                                                              \
    char t_[DEC_TEXT_MAX];                                          \
    size_t n_ = dec_format_value(t_, sizeof t_, f);                 \
    expect_text(__LINE__, "value of " #f, t_, n_, want);            \
  } while (0)
#define SCALED(k, scale, want)                                             \
  do {                                                                     \
    char t_[DEC_TEXT_MAX];                                                 \
    size_t n_ = dec_format_scaled(t_, sizeof t_, k, scale);                \
    expect_text(__LINE__, "scaled " #k " * " #scale, t_, n_, want);        \
  } while (0)
#define SHORTEST(f, want)                                           \
  do {                                                              \
    char t_[DEC_TEXT_MAX];                                          \
    size_t n_ = dec_format_shortest(t_, sizeof t_, f);              \
    expect_text(__LINE__, "shortest of " #f, t_, n_, want);         \
  } while (0)

static void test_decimal_format(void) {
  const float flt_max = from_bits(0x7f7fffffu);
  const float inf = from_bits(0x7f800000u);
  const float nan = from_bits(0x7fc00000u);
  char small[8];
  /* the value format: 4 digits, exact, ties to even, trimmed; -0 is 0 */
  VALUE(0.0f, "0");
  VALUE(-0.0f, "0");
  VALUE(1.5f, "1.5");
  VALUE(0.1f, "0.1");
  VALUE(-0.00004f, "0");
  VALUE(0.00005f, "0"); /* the float lies just below 0.00005 */
  VALUE(0.03125f, "0.0312");
  VALUE(0.09375f, "0.0938");
  VALUE(123456792.0f, "123456792");
  VALUE(999999936.0f, "999999936");
  VALUE(1e9f, "1e+09");
  VALUE(1234567936.0f, "1.2346e+09");
  VALUE(-1234567936.0f, "-1.2346e+09");
  VALUE(9999998976.0f, "1e+10"); /* rounds up into the next decade */
  VALUE(flt_max, "3.4028e+38");
  VALUE(from_bits(1u), "0");
  VALUE(inf, "inf");
  VALUE(-inf, "-inf");
  VALUE(nan, "nan");
  /* k * scale, the exact product (how the device shows an output code) */
  SCALED(226, 0.1018255203962326f, "23.0126");
  SCALED(-29, 0.1018255203962326f, "-2.9529");
  SCALED(1, 0.03125f, "0.0312");
  SCALED(3, 0.03125f, "0.0938");
  SCALED(-3, 0.03125f, "-0.0938");
  SCALED(0, 5.0f, "0");
  SCALED(-1, 0.00001f, "0");
  SCALED(5, 246890000.0f, "1.2344e+09"); /* exact ties in exponent form: to even */
  SCALED(5, 246910000.0f, "1.2346e+09");
  SCALED(255, flt_max, "8.6772e+40");
  SCALED(70000, 1.0f, "65535"); /* beyond any int8 difference: saturates */
  SCALED(-1, inf, "-inf");
  SCALED(1, nan, "nan");
  /* shortest round trip */
  SHORTEST(0.1f, "0.1");
  SHORTEST(0.05098039284348488f, "0.050980393");
  SHORTEST(0.1018255203962326f, "0.10182552");
  SHORTEST(12.0f, "12");
  SHORTEST(-1.0f, "-1");
  SHORTEST(1.5f, "1.5");
  SHORTEST(1e-5f, "1e-05");
  SHORTEST(0.0001f, "1e-04"); /* the float lies just below 1e-4: exponent form */
  SHORTEST(0.00015f, "0.00015");
  SHORTEST(123456.0f, "123456");
  SHORTEST(1e6f, "1e+06");
  SHORTEST(16777216.0f, "1.6777216e+07");
  SHORTEST(from_bits(1u), "1e-45");
  SHORTEST(from_bits(2u), "3e-45");
  SHORTEST(from_bits(0x007fffffu), "1.1754942e-38");
  SHORTEST(from_bits(0x00800000u), "1.1754944e-38");
  SHORTEST(flt_max, "3.4028235e+38");
  SHORTEST(-flt_max, "-3.4028235e+38");
  SHORTEST(0.0f, "0");
  SHORTEST(-0.0f, "0");
  SHORTEST(inf, "inf");
  SHORTEST(nan, "nan");
  /* bounded: cut to cap - 1 characters and terminated; cap 0 writes nothing */
  EXPECT_TRUE(dec_format_shortest(small, 4, flt_max) == 3 && strcmp(small, "3.4") == 0);
  EXPECT_TRUE(dec_format_value(small, 1, 1.5f) == 0 && small[0] == '\0');
  small[0] = 'x';
  EXPECT_TRUE(dec_format_scaled(small, 0, 1, 1.5f) == 0 && small[0] == 'x');
  EXPECT_TRUE(dec_format_value(NULL, 8, 1.5f) == 0);
}

/* ---- main ----------------------------------------------------------------------------- */

typedef struct {
  const char *name;
  void (*run)(void);
} group_t;

int main(int argc, char **argv) {
  /* The classifier and wide builds run their own group only: the others' answers are the
   * two-input regression model's. */
  static const group_t groups[] = {
#if MODEL_CLASS_COUNT > 0
      {"classifier", test_classifier},
#endif
#if MODEL_INPUT_COUNT > 2
      {"wide", test_wide},
#endif
      {"queries", test_queries},         {"errors", test_errors},
      {"bench", test_bench},             {"engine failure", test_engine_failure},
      {"line editing", test_line_editing}, {"echo", test_echo},
      {"decimal parse", test_decimal_parse}, {"decimal format", test_decimal_format},
  };
  const size_t count = MODEL_CLASS_COUNT > 0 || MODEL_INPUT_COUNT > 2 ? 1 : sizeof groups / sizeof groups[0];
  size_t i;
  int fail_one = argc > 1 && strcmp(argv[1], "--fail-one") == 0;
  if (argc > 1 && strcmp(argv[1], "--state-bytes") == 0) {
    /* the core's RAM beside the model's input and output: the same for every model */
    printf("%lu\n", (unsigned long)(sizeof g_app - sizeof g_app.input - sizeof g_app.output));
    return 0;
  }
  if (argc > 1 && !fail_one) {
    fprintf(stderr, "usage: %s [--fail-one | --state-bytes]\n", argv[0]);
    return 2;
  }
  for (i = 0; i < count; i++) {
    unsigned before = g_failures;
    groups[i].run();
    printf("%s %s\n", g_failures == before ? "ok" : "FAILED", groups[i].name);
  }
  if (fail_one) {
    unsigned before = g_failures;
    test_wrong_expectation();
    printf("%s wrong expectation\n", g_failures == before ? "ok" : "FAILED");
  }
  printf("core_test: %u checks, %u failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
