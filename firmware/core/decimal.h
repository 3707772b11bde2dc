/* Exact decimal <-> 32-bit float conversion for protocol v1's numbers (docs/protocol.md):
 * the nearest float to a decimal text, and the value and shortest texts of a float.
 * Portable C99: no heap, no stdio, no strtof, no printf-float, so the same code gives the
 * same bits and the same text on the host, in QEMU and on the board. */
#ifndef DECIMAL_H
#define DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A buffer of this many bytes holds any text the formatters below write, NUL included. */
#define DEC_TEXT_MAX 32

/* Parses a whole text as a decimal number: [+-] digits [. digits] [(e|E) [+-] digits],
 * with at least one mantissa digit. Rejects nan, inf, hex and magnitudes that round
 * beyond the largest float (values below half the smallest subnormal become 0). The
 * result is the nearest float, ties to even, as a correctly rounded strtof gives.
 * 0 on success; -1 (and *out untouched) otherwise. */
int dec_parse_float(const char *s, size_t n, float *out);

/* The formatters write their text and a NUL into buf, cut to cap - 1 characters, and
 * return the text's length (0 when cap is 0). Infinity and NaN, which dec_parse_float
 * never returns, print as inf, -inf and nan. */

/* k * scale as the protocol shows values: up to 4 fractional digits (exact decimal
 * rounding of the exact product, ties to even like printf and Python's format), trailing
 * zeros and point removed, -0 as 0, exponent form (1.2346e+09) for magnitudes of 1e9 or
 * more. k is an int8 code difference (|k| <= 255; beyond 65535 it saturates). */
size_t dec_format_scaled(char *buf, size_t cap, int32_t k, float scale);

/* f in the value format above. */
size_t dec_format_value(char *buf, size_t cap, float f);

/* The shortest decimal text that dec_parse_float reads back as exactly f (like Python's
 * repr of a numpy float32): 0.050980393, 12, 1e-05. */
size_t dec_format_shortest(char *buf, size_t cap, float f);

/* v in decimal digits, the one integer formatter of the core (the protocol's too). */
size_t dec_format_uint(char *buf, size_t cap, unsigned long v);

#ifdef __cplusplus
}
#endif

#endif
