/* Serial protocol v1 building blocks (docs/protocol.md): line assembly, fields, integer
 * codes and the bounded response text. Decimal numbers (floats) are decimal.h's job.
 * Portable C99: no heap, no stdio, so the same code behaves identically on the host, in
 * QEMU and on the board. */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_VERSION 1
/* Bytes a stored request line may hold before its line ending: the limit for commands.
 * A longer query (values, or `q` codes) is not stored but parsed field by field as it
 * arrives (app.c); each of its fields may hold at most PROTO_FIELD_MAX bytes. */
#define PROTO_LINE_MAX 128
#define PROTO_FIELD_MAX PROTO_LINE_MAX

/* ---- line assembly ------------------------------------------------------------ */

typedef enum {
  PROTO_LINE_NONE = 0, /* byte consumed, no line complete yet */
  PROTO_LINE_READY,    /* a line of at most PROTO_LINE_MAX bytes is complete */
  PROTO_LINE_TOO_LONG  /* an overlong line (already discarded) has ended */
} proto_line_event_t;

/* Backspace and DEL (what terminals send for the Backspace key) delete the line's last
 * byte; at the start of a line, and on a line already too long, they have no effect. */
#define PROTO_BACKSPACE 0x08
#define PROTO_DELETE 0x7f

/* Assembles request lines from a byte stream. Zero-initialise or call proto_line_init. */
typedef struct {
  char buf[PROTO_LINE_MAX + 1]; /* +1 keeps the line NUL-terminated for convenience */
  size_t len;
  uint8_t overflow; /* the current line passed PROTO_LINE_MAX; its bytes are dropped */
  uint8_t after_cr; /* the previous byte was CR: a following LF is the same line ending */
} proto_line_t;

void proto_line_init(proto_line_t *ln);

/* Feeds one byte. On PROTO_LINE_READY, *line and *len (when non-NULL) describe the line
 * without its ending; the bytes stay valid until the next call. The line may contain
 * any byte, NUL included, but never Backspace or DEL. Right after PROTO_LINE_READY or
 * PROTO_LINE_TOO_LONG, ln->after_cr is 1 when a CR ended the line, 0 for an LF. */
proto_line_event_t proto_line_push(proto_line_t *ln, uint8_t byte, const char **line, size_t *len);

/* ---- fields ------------------------------------------------------------------- */

/* Space, tab or comma: any run of them separates fields. */
int proto_is_separator(char c);

/* Finds the next field in [*pos, end): 1 and the field in *field and *field_len, advancing
 * *pos past it; 0 when no field is left. */
int proto_next_field(const char **pos, const char *end, const char **field, size_t *field_len);

/* ---- integers ------------------------------------------------------------------ */

/* Parses a whole field as a decimal integer: [+-] digits. Values beyond +-2e9 saturate
 * there (callers range-check anyway). 0 on success. */
int proto_parse_int(const char *s, size_t n, long *out);

/* ---- formatting --------------------------------------------------------------- */

/* A text buffer. Bounded (proto_out_init): appends never write past cap and truncate
 * silently. Streaming (proto_out_init_stream): a full buffer is handed to flush and
 * emptied, so a text of any length goes through a buffer of cap bytes; proto_out_flush
 * hands over the rest. */
typedef void (*proto_flush_fn)(void *ctx, const char *bytes, size_t n);

typedef struct {
  char *buf;
  size_t cap;
  size_t len;
  proto_flush_fn flush; /* NULL: bounded */
  void *ctx;
} proto_out_t;

void proto_out_init(proto_out_t *o, char *buf, size_t cap);
void proto_out_init_stream(proto_out_t *o, char *buf, size_t cap, proto_flush_fn flush, void *ctx);
void proto_out_flush(proto_out_t *o);
void proto_put_char(proto_out_t *o, char c);
void proto_put_str(proto_out_t *o, const char *s);
/* Copies at most max bytes of s, replacing anything but printable ASCII by '?', so that a
 * text from elsewhere (an engine's error) can never break the one-line response. */
void proto_put_text(proto_out_t *o, const char *s, size_t max);
void proto_put_int(proto_out_t *o, long v);
void proto_put_uint(proto_out_t *o, unsigned long v);

#ifdef __cplusplus
}
#endif

#endif
