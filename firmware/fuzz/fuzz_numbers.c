/* libFuzzer differential harness: the core's own number parser and formatters against
 * glibc's correctly rounded strtof and printf. Host-only test code, so stdio is fine.
 *
 *   build as for fuzz_protocol, target fuzz_numbers
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The spec's grammar: [+-] digits [. digits] [(e|E) [+-] digits], a mantissa digit. */
static int spec_grammar(const char *s, size_t n) {
  size_t i = 0;
  size_t digits = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
  }
  if (digits == 0) return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t e = 0;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, e++;
    if (e == 0) return 0;
  }
  return i == n;
}

static void check_parse(const char *s, size_t n) {
  char buf[300];
  float mine = 0.0f;
  int rc = proto_parse_float(s, n, &mine);
  if (!spec_grammar(s, n)) {
    if (rc == 0) abort(); /* accepted something outside the grammar */
    return;
  }
  if (n >= sizeof buf) return;
  memcpy(buf, s, n);
  buf[n] = '\0';
  {
    float ref = strtof(buf, NULL);
    if (isinf(ref)) {
      if (rc == 0) abort(); /* accepted an overflow */
    } else {
      if (rc != 0) abort(); /* rejected a float-range number */
      if (memcmp(&mine, &ref, sizeof ref) != 0) abort(); /* not the nearest float */
    }
  }
}

static void check_format(uint32_t bits) {
  float f;
  char out[64];
  char ref[64];
  proto_out_t o;
  memcpy(&f, &bits, sizeof f);
  if (!isfinite(f)) return;

  /* shortest text reads back as exactly f */
  proto_out_init(&o, out, sizeof out - 1);
  proto_put_float_short(&o, f);
  out[o.len] = '\0';
  {
    float back = 0.0f;
    if (proto_parse_float(out, o.len, &back) != 0) abort();
    if (back != f) abort();
    if (strtof(out, NULL) != f) abort();
  }

  /* value format: printf's exact %.4f (or %.4e from 1e9), trimmed, -0 as 0 */
  proto_out_init(&o, out, sizeof out - 1);
  proto_put_fixed4(&o, f);
  out[o.len] = '\0';
  if (fabsf(f) >= 1e9f) {
    char *e;
    char *end;
    snprintf(ref, sizeof ref, "%.4e", (double)f);
    e = strchr(ref, 'e');
    end = e;
    while (end[-1] == '0') end--;
    if (end[-1] == '.') end--;
    memmove(end, e, strlen(e) + 1);
  } else {
    size_t len;
    snprintf(ref, sizeof ref, "%.4f", (double)f);
    len = strlen(ref);
    while (ref[len - 1] == '0') ref[--len] = '\0';
    if (ref[len - 1] == '.') ref[--len] = '\0';
    if (strcmp(ref, "-0") == 0) strcpy(ref, "0");
  }
  if (strcmp(out, ref) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 4) {
    uint32_t bits;
    memcpy(&bits, data, sizeof bits);
    check_format(bits);
  }
  check_parse((const char *)data, size);
  return 0;
}
