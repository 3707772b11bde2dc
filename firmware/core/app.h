/* The portable device application: serial protocol v1 (docs/protocol.md) on top of the
 * engine interface. A platform layer feeds it received bytes and gives it a way to write
 * bytes and a microsecond clock; nothing here knows about Arduino, ptys or UARTs.
 * No heap, no stdio. */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <stdint.h>

#include "model_info.h"
#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sends bytes to the serial peer. Must take all n bytes (buffer or block as needed). */
typedef void (*app_write_fn)(void *ctx, const uint8_t *bytes, size_t n);

/* A free-running microsecond counter; it may wrap at 2^32 (like Arduino's micros()). */
typedef uint32_t (*app_clock_fn)(void);

/* A regression model's header defines no classes; a classifier's defines its labels as sent. */
#ifndef MODEL_CLASS_COUNT
#define MODEL_CLASS_COUNT 0
#define MODEL_LABEL_MAX_BYTES 0
#define MODEL_LABELS_BYTES 0
#endif

/* Longest answer line, CRLF included: values (then a classifier's top label), or `labels`.
 * Nothing on the device is sized by it (answers are formatted as they are sent); hosts and
 * tests that collect a whole answer in a buffer use it. */
#define APP_VALUES_MAX (256 + 20 * (MODEL_OUTPUT_COUNT) + 1 + (MODEL_LABEL_MAX_BYTES))
#define APP_LABELS_MAX (16 + (MODEL_LABELS_BYTES))
#define APP_RESPONSE_MAX (APP_VALUES_MAX > APP_LABELS_MAX ? APP_VALUES_MAX : APP_LABELS_MAX)

/* Bytes of an answer formatted before each write: an answer of any length is sent in
 * pieces of at most this many bytes, so its length costs no RAM; a short answer is one
 * write. */
#ifndef APP_OUT_CHUNK
#define APP_OUT_CHUNK 128
#endif

/* Largest N of `bench N`. A build may lower it (the fuzz build does, to stay fast). */
#ifndef APP_BENCH_MAX
#define APP_BENCH_MAX 1000000
#endif

/* Echo memory: the device's last APP_ECHO_LINES answer lines, each kept as its length and
 * a 64-bit FNV-1a hash of its bytes (CRLF included), so an answer of any length costs 12
 * bytes. A line that repeats one of them can be the echo of a host tty with echo on; such
 * echoes are not answered (docs/protocol.md, "Echo"). */
#ifndef APP_ECHO_LINES
#define APP_ECHO_LINES 64
#endif

typedef struct {
  uint32_t len;        /* bytes, CRLF included */
  uint32_t hash[2];    /* FNV-1a 64, low word first (two words: no padding on 32-bit cores) */
} app_echo_t;

/* A line that passes PROTO_LINE_MAX bytes is no longer stored: from then on its fields are
 * parsed as they arrive (values or `q` codes straight into app_t.input), the line buffer
 * holds only the field being typed, and the line's final bytes are hashed as they arrive,
 * for the echo memory (docs/protocol.md, "Long lines"). */
typedef enum {
  APP_STREAM_UNKNOWN = 0, /* no field complete yet */
  APP_STREAM_VALUES,      /* a value query: each field is a number */
  APP_STREAM_CODES,       /* `q`: each field after the word is a code */
  APP_STREAM_LONG         /* not a query (a command, or only separators): ERR 2 at its end */
} app_stream_kind_t;

typedef struct {
  uint8_t active;     /* the line passed PROTO_LINE_MAX bytes */
  uint8_t kind;       /* app_stream_kind_t, set when the first field is complete */
  uint8_t long_field; /* the field being typed passed PROTO_FIELD_MAX: bad, bytes not kept */
  uint8_t clipped;    /* a value so far lies outside the calibrated range */
  uint8_t err_line;   /* the line starts with PROTO_ERR_PREFIX */
  size_t fields;      /* fields parsed so far (the word `q` not counted) */
  size_t bad_field;   /* the first bad field (from 1), 0 while none */
  uint64_t echo_hash; /* FNV-1a 64 of the line's final bytes so far */
  size_t echo_len;    /* how many final bytes the line has so far */
} app_stream_t;

typedef struct {
  proto_line_t line;
  app_stream_t stream;
  app_write_fn write;
  void *ctx;
  app_clock_fn micros;
  int engine_ready;
  int8_t input[MODEL_INPUT_COUNT];
  int8_t output[MODEL_OUTPUT_COUNT];
  char response[APP_OUT_CHUNK];  /* the answer being formatted, a piece at a time */
  uint64_t out_hash;             /* FNV-1a 64 of the answer's bytes sent so far */
  size_t out_len;                /* how many bytes of the answer were sent so far */
  app_echo_t echo[APP_ECHO_LINES]; /* the recent answers, a ring */
  size_t echo_next;              /* the ring's slot for the next answer */
  uint8_t after_echo; /* the last line was an echo: an empty line next is its extra ending */
  uint8_t lf_repeat;  /* the last line repeated an answer, ended by LF, and was answered */
  uint8_t lf_echo;    /* such a repeat, then an empty line: LF-ended repeats are echoes now */
} app_t;

/* Prepares app and tries engine_init once; a failed engine is retried on each query and
 * reported as ERR 7, so the device always answers. write and micros may be NULL (then
 * responses are dropped and bench answers ERR 8). Sends nothing. */
void app_init(app_t *app, app_write_fn write, void *ctx, app_clock_fn micros);

/* Consumes received bytes; every completed request line is answered (one response line,
 * ending in CRLF, in writes of at most APP_OUT_CHUNK bytes) through write before this
 * returns, except the echo of a recent answer (see APP_ECHO_LINES). Any byte sequence is safe, and a line of any length costs no more
 * RAM than app_t: a query longer than PROTO_LINE_MAX is parsed as its fields arrive. */
void app_feed(app_t *app, const uint8_t *bytes, size_t n);

/* Answers one request line (without its line ending) into out, CRLF included, and
 * returns its length (at most cap; an answer longer than that is cut, CRLF kept). Used by app_feed for lines of at most PROTO_LINE_MAX
 * bytes; it takes a whole line of any length (tests and fuzzing compare app_feed's
 * field-by-field answers with it), but knows neither the limit for commands nor
 * PROTO_FIELD_MAX. */
size_t app_respond(app_t *app, const char *line, size_t len, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
