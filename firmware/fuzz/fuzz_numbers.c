/* libFuzzer differential harness for the decimal unit (core/decimal.c): its number
 * parser and formatters against glibc's correctly rounded strtof and printf. Host-only
 * test code, so stdio is fine.
 *
 *   build as for fuzz_protocol, target fuzz_numbers
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"

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
  int rc = dec_parse_float(s, n, &mine);
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

/* The value format by printf: its exact %.4f (or %.4e from 1e9), trimmed, -0 as 0. */
static void ref_value(double v, char *ref, size_t cap) {
  if (fabs(v) >= 1e9) {
    char *e;
    char *end;
    snprintf(ref, cap, "%.4e", v);
    e = strchr(ref, 'e');
    end = e;
    while (end[-1] == '0') end--;
    if (end[-1] == '.') end--;
    memmove(end, e, strlen(e) + 1);
  } else {
    size_t len;
    snprintf(ref, cap, "%.4f", v);
    len = strlen(ref);
    while (ref[len - 1] == '0') ref[--len] = '\0';
    if (ref[len - 1] == '.') ref[--len] = '\0';
    if (strcmp(ref, "-0") == 0) strcpy(ref, "0");
  }
}

/* k is an int8 code difference, as the device shows outputs: k * f is exact in a double. */
static void check_format(uint32_t bits, int k) {
  float f;
  char out[DEC_TEXT_MAX];
  char ref[64];
  size_t len;
  memcpy(&f, &bits, sizeof f);
  if (!isfinite(f)) return;

  /* shortest text reads back as exactly f, and fits DEC_TEXT_MAX with room to spare */
  len = dec_format_shortest(out, sizeof out, f);
  if (len != strlen(out) || len + 1 >= sizeof out) abort();
  {
    float back = 0.0f;
    if (dec_parse_float(out, len, &back) != 0) abort();
    if (back != f) abort();
    if (strtof(out, NULL) != f) abort();
  }

  len = dec_format_value(out, sizeof out, f);
  if (len != strlen(out) || len + 1 >= sizeof out) abort();
  ref_value((double)f, ref, sizeof ref);
  if (strcmp(out, ref) != 0) abort();

  len = dec_format_scaled(out, sizeof out, k, f);
  if (len != strlen(out) || len + 1 >= sizeof out) abort();
  ref_value((double)k * (double)f, ref, sizeof ref);
  if (strcmp(out, ref) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 4) {
    uint32_t bits;
    memcpy(&bits, data, sizeof bits);
    check_format(bits, size >= 6 ? (int)data[4] - (int)data[5] : 1);
  }
  check_parse((const char *)data, size);
  return 0;
}
