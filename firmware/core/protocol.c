/* Serial protocol v1 building blocks: see protocol.h and docs/protocol.md. */
#include "protocol.h"

#include <string.h>

#include "decimal.h"

/* ---- line assembly ------------------------------------------------------------ */

void proto_line_init(proto_line_t *ln) {
  if (ln == NULL) return;
  memset(ln, 0, sizeof *ln);
}

proto_line_event_t proto_line_push(proto_line_t *ln, uint8_t byte, const char **line, size_t *len) {
  proto_line_event_t ev;
  if (ln == NULL) return PROTO_LINE_NONE;
  if (ln->len > PROTO_LINE_MAX) ln->len = PROTO_LINE_MAX; /* defensive: never index past buf */

  if (byte == '\n' && ln->after_cr) { /* the LF of a CRLF: the line was already answered */
    ln->after_cr = 0;
    return PROTO_LINE_NONE;
  }
  if (byte == PROTO_BACKSPACE || byte == PROTO_DELETE) { /* edits; no effect at line start */
    if (!ln->overflow && ln->len > 0) ln->len--;
    return PROTO_LINE_NONE;
  }
  ln->after_cr = (uint8_t)(byte == '\r');

  if (byte != '\r' && byte != '\n') {
    if (ln->overflow) return PROTO_LINE_NONE;
    if (ln->len >= PROTO_LINE_MAX) { /* one byte too many: drop the line as it arrives */
      ln->overflow = 1;
      ln->len = 0;
      return PROTO_LINE_NONE;
    }
    ln->buf[ln->len++] = (char)byte;
    return PROTO_LINE_NONE;
  }

  ev = ln->overflow ? PROTO_LINE_TOO_LONG : PROTO_LINE_READY;
  ln->buf[ln->len] = '\0';
  if (line != NULL) *line = ln->buf;
  if (len != NULL) *len = ev == PROTO_LINE_READY ? ln->len : 0;
  ln->len = 0;
  ln->overflow = 0;
  return ev;
}

/* ---- fields ------------------------------------------------------------------- */

int proto_is_separator(char c) { return c == ' ' || c == '\t' || c == ','; }

int proto_next_field(const char **pos, const char *end, const char **field, size_t *field_len) {
  const char *p;
  const char *start;
  if (pos == NULL || *pos == NULL || end == NULL) return 0;
  p = *pos;
  while (p < end && proto_is_separator(*p)) p++;
  if (p >= end) {
    *pos = end;
    return 0;
  }
  start = p;
  while (p < end && !proto_is_separator(*p)) p++;
  if (field != NULL) *field = start;
  if (field_len != NULL) *field_len = (size_t)(p - start);
  *pos = p;
  return 1;
}

/* ---- integers ------------------------------------------------------------------ */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int proto_parse_int(const char *s, size_t n, long *out) {
  size_t i = 0;
  int neg = 0;
  long v = 0;
  if (s == NULL || out == NULL) return -1;
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    i++;
  }
  if (i >= n) return -1;
  for (; i < n; i++) {
    if (!is_digit(s[i])) return -1;
    if (v < 200000000L) {
      v = v * 10 + (s[i] - '0');
    } else {
      v = 2000000000L;
    }
  }
  if (v > 2000000000L) v = 2000000000L;
  *out = neg ? -v : v;
  return 0;
}

/* ---- formatting --------------------------------------------------------------- */

void proto_out_init(proto_out_t *o, char *buf, size_t cap) {
  proto_out_init_stream(o, buf, cap, NULL, NULL);
}

void proto_out_init_stream(proto_out_t *o, char *buf, size_t cap, proto_flush_fn flush, void *ctx) {
  o->buf = buf;
  o->cap = buf == NULL ? 0 : cap;
  o->len = 0;
  o->flush = o->cap == 0 ? NULL : flush;
  o->ctx = ctx;
}

void proto_out_flush(proto_out_t *o) {
  if (o == NULL || o->flush == NULL || o->len == 0) return;
  o->flush(o->ctx, o->buf, o->len);
  o->len = 0;
}

void proto_put_char(proto_out_t *o, char c) {
  if (o == NULL) return;
  if (o->len >= o->cap) {
    if (o->flush == NULL) return;
    proto_out_flush(o);
  }
  o->buf[o->len++] = c;
}

void proto_put_str(proto_out_t *o, const char *s) {
  if (s == NULL) return;
  while (*s != '\0') proto_put_char(o, *s++);
}

void proto_put_text(proto_out_t *o, const char *s, size_t max) {
  size_t i;
  if (s == NULL) return;
  for (i = 0; i < max && s[i] != '\0'; i++) {
    char c = s[i];
    proto_put_char(o, (c >= 0x20 && c <= 0x7e) ? c : '?');
  }
}

void proto_put_uint(proto_out_t *o, unsigned long v) {
  char text[24];
  dec_format_uint(text, sizeof text, v);
  proto_put_str(o, text);
}

void proto_put_int(proto_out_t *o, long v) {
  if (v < 0) {
    proto_put_char(o, '-');
    proto_put_uint(o, 0ul - (unsigned long)v); /* also right for LONG_MIN */
  } else {
    proto_put_uint(o, (unsigned long)v);
  }
}
