/* Exact decimal <-> float conversion: see decimal.h. Floats are converted through a
 * double approximation, and an exact comparison (a small bignum) decides whenever the
 * approximation lies too close to a rounding boundary to tell. */
#include "decimal.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------------ */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Powers of ten exactly representable in a double. */
static const double k_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* x * 10^e for |e| up to a few hundred; exact factor for |e| <= 22, one extra rounding per
 * further 22 decades (far below what a float can notice). */
static double scale10(double x, int e) {
  int neg = e < 0;
  unsigned u = (unsigned)(neg ? -e : e);
  double f = 1.0;
  while (u > 22) {
    if (neg) {
      x /= 1e22;
    } else {
      x *= 1e22;
    }
    u -= 22;
  }
  f = k_pow10[u];
  return neg ? x / f : x * f;
}

/* float limits, spelled as hex so no <float.h> macro spelling matters */
#define FLT_MAX_D 0x1.fffffep+127 /* largest finite float */
#define TWO_128_D 0x1p+128        /* the "next float" after FLT_MAX, for rounding */

/* ---- exact comparisons: a tiny bignum, only for near-ties -------------------------- */

#define BIG_WORDS 32 /* 1024 bits: 125 digits times 10^172 or 2^203 fit with room */

typedef struct {
  uint32_t w[BIG_WORDS];
  size_t n;     /* words in use, no leading zero words */
  int overflow; /* a result did not fit: comparisons are then not trusted */
} big_t;

static void big_set(big_t *b, uint64_t v) {
  memset(b, 0, sizeof *b);
  b->w[0] = (uint32_t)v;
  b->w[1] = (uint32_t)(v >> 32);
  b->n = (v >> 32) != 0 ? 2u : v != 0 ? 1u : 0u;
}

/* b = b * m + add */
static void big_mul_add(big_t *b, uint32_t m, uint32_t add) {
  uint64_t carry = add;
  size_t i;
  for (i = 0; i < b->n; i++) {
    uint64_t p = (uint64_t)b->w[i] * m + carry;
    b->w[i] = (uint32_t)p;
    carry = p >> 32;
  }
  if (carry != 0) {
    if (b->n < BIG_WORDS) {
      b->w[b->n++] = (uint32_t)carry;
    } else {
      b->overflow = 1;
    }
  }
  while (b->n > 0 && b->w[b->n - 1] == 0) b->n--;
}

static void big_mul_pow10(big_t *b, unsigned k) {
  static const uint32_t p10[10] = {1u,      10u,      100u,      1000u,      10000u,
                                   100000u, 1000000u, 10000000u, 100000000u, 1000000000u};
  for (; k >= 9u && !b->overflow; k -= 9u) big_mul_add(b, p10[9], 0);
  big_mul_add(b, p10[k], 0);
}

static void big_shl(big_t *b, unsigned k) {
  size_t words = k / 32u;
  unsigned bits = k % 32u;
  size_t i;
  if (b->n == 0) return;
  if (b->n + words + 1u > BIG_WORDS) {
    b->overflow = 1;
    return;
  }
  b->w[b->n + words] = 0;
  for (i = b->n; i-- > 0;) {
    uint64_t v = (uint64_t)b->w[i] << bits;
    b->w[i + words + 1u] |= (uint32_t)(v >> 32);
    b->w[i + words] = (uint32_t)v;
  }
  for (i = 0; i < words; i++) b->w[i] = 0;
  b->n += words + 1u;
  while (b->n > 0 && b->w[b->n - 1] == 0) b->n--;
}

/* Compares a * 2^a2 * 10^a10 with b * 2^b2 * 10^b10: -1, 0 or 1; 2 if it could not tell. */
static int big_cmp_scaled(big_t a, int a2, int a10, big_t b, int b2, int b10) {
  size_t i;
  if (a2 >= b2) {
    big_shl(&a, (unsigned)(a2 - b2));
  } else {
    big_shl(&b, (unsigned)(b2 - a2));
  }
  if (a10 >= b10) {
    big_mul_pow10(&a, (unsigned)(a10 - b10));
  } else {
    big_mul_pow10(&b, (unsigned)(b10 - a10));
  }
  if (a.overflow || b.overflow) return 2;
  if (a.n != b.n) return a.n > b.n ? 1 : -1;
  for (i = a.n; i-- > 0;) {
    if (a.w[i] != b.w[i]) return a.w[i] > b.w[i] ? 1 : -1;
  }
  return 0;
}

/* |d| = m * 2^e2 for a finite positive normal double. Assumes IEEE-754 binary64. */
static void double_parts(double d, uint64_t *m, int *e2) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  *m = (bits & ((UINT64_C(1) << 52) - 1u)) | (UINT64_C(1) << 52);
  *e2 = (int)((bits >> 52) & 0x7ffu) - 1075;
}

static float float_from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static uint32_t float_bits(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return bits;
}

/* ---- decimal to float ------------------------------------------------------------ */

#define SIG_KEEP 125 /* significant digits kept for exact ties (float midpoints need ~113) */

/* The digits of a decimal number: integer part ip[0..ipn) and fraction fp[0..fpn), times
 * 10^exp10. */
typedef struct {
  const char *ip;
  size_t ipn;
  const char *fp;
  size_t fpn;
  long exp10;
} decimal_t;

static char dec_digit(const decimal_t *x, size_t i) {
  return i < x->ipn ? x->ip[i] : x->fp[i - x->ipn];
}

/* The exact value, as big * 10^*dexp (digits past SIG_KEEP folded into a sticky digit). */
static void dec_to_big(const decimal_t *x, big_t *big, long *dexp) {
  size_t total = x->ipn + x->fpn;
  size_t i = 0;
  size_t kept = 0;
  int sticky = 0;
  big_set(big, 0);
  *dexp = x->exp10 - (long)x->fpn;
  while (i < total && dec_digit(x, i) == '0') i++;
  for (; i < total; i++) {
    uint32_t d = (uint32_t)(dec_digit(x, i) - '0');
    if (kept < SIG_KEEP) {
      big_mul_add(big, 10u, d);
      kept++;
    } else {
      (*dexp)++;
      if (d != 0) sticky = 1;
    }
  }
  if (sticky) { /* strictly between two SIG_KEEP-digit numbers, where no float tie lies */
    big_mul_add(big, 10u, 1u);
    (*dexp)--;
  }
}

/* Converts a decimal to the nearest float (ties to even). A double approximation decides
 * unless it lies within a hair of a float midpoint; then an exact comparison does.
 * 0 on success, -1 when the magnitude does not fit a float. */
static int decimal_to_float(const decimal_t *x, int neg, float *out) {
  size_t total = x->ipn + x->fpn;
  size_t i = 0;
  size_t nsig;
  int sig = 0;
  uint64_t mant = 0; /* the first 19 significant digits: < 10^19 < 2^64 */
  long mag;
  long dexp;
  double d;
  double fd;
  double gd;
  double mid;
  float f;

  while (i < total && dec_digit(x, i) == '0') i++;
  nsig = total - i;
  for (; i < total && sig < 19; i++, sig++) mant = mant * 10u + (uint64_t)(dec_digit(x, i) - '0');
  if (mant == 0) { /* also covers all-zero mantissas with any exponent */
    *out = neg ? -0.0f : 0.0f;
    return 0;
  }
  dexp = x->exp10 - (long)x->fpn + (long)(nsig - (size_t)sig); /* value ~ mant * 10^dexp */
  mag = dexp + sig; /* 10^(mag-1) <= value < 10^mag */
  if (mag - 1 >= 39) return -1; /* >= 1e39 > FLT_MAX */
  if (mag < -46) {              /* < 1e-46, under half the smallest subnormal */
    *out = neg ? -0.0f : 0.0f;
    return 0;
  }
  d = scale10((double)mant, (int)dexp); /* -65 <= dexp <= 38; relative error < 2^-50 */
  if (d >= TWO_128_D) return -1;

  if (d > FLT_MAX_D) {
    f = float_from_bits(0x7f7fffffu);
    fd = FLT_MAX_D;
    gd = TWO_128_D;
  } else {
    f = (float)d;
    fd = (double)f;
    if (d == fd) {
      *out = neg ? -f : f;
      return 0;
    }
    /* the neighbour on d's side; FLT_MAX + 1 ulp is 2^128 */
    gd = d > fd ? (float_bits(f) == 0x7f7fffffu ? TWO_128_D
                                                 : (double)float_from_bits(float_bits(f) + 1u))
                : (double)float_from_bits(float_bits(f) - 1u);
  }
  mid = (fd + gd) * 0.5; /* exact: two adjacent floats */

  if ((d > mid ? d - mid : mid - d) <= mid * 0x1p-44) { /* too close to call: be exact */
    big_t v;
    big_t m;
    long vexp;
    uint64_t mm;
    int me2;
    int c;
    dec_to_big(x, &v, &vexp);
    double_parts(mid, &mm, &me2);
    big_set(&m, mm);
    c = big_cmp_scaled(v, 0, (int)vexp, m, me2, 0);
    if (c != 2) {
      double upper = fd > gd ? fd : gd;
      double lower = fd > gd ? gd : fd;
      double pick;
      if (c == 0) { /* exact tie: the float with the even mantissa; 2^128 counts as even */
        pick = (upper == TWO_128_D || (float_bits((float)upper) & 1u) == 0) ? upper : lower;
      } else {
        pick = c > 0 ? upper : lower;
      }
      if (pick == TWO_128_D) return -1;
      f = (float)pick;
    }
  } else if (gd == TWO_128_D && d > mid) {
    return -1; /* nearer to 2^128 than to FLT_MAX: rounds to infinity */
  }
  *out = neg ? -f : f;
  return 0;
}

int dec_parse_float(const char *s, size_t n, float *out) {
  size_t i = 0;
  int neg = 0;
  decimal_t x;
  float value;

  if (s == NULL || out == NULL) return -1;
  memset(&x, 0, sizeof x);
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    neg = s[i] == '-';
    i++;
  }
  x.ip = s + i;
  while (i < n && is_digit(s[i])) i++;
  x.ipn = (size_t)((s + i) - x.ip);
  x.fp = s + i;
  if (i < n && s[i] == '.') {
    i++;
    x.fp = s + i;
    while (i < n && is_digit(s[i])) i++;
    x.fpn = (size_t)((s + i) - x.fp);
  }
  if (x.ipn + x.fpn == 0) return -1; /* no mantissa digit */
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    int eneg = 0;
    long e = 0;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      eneg = s[i] == '-';
      i++;
    }
    if (i >= n || !is_digit(s[i])) return -1;
    for (; i < n && is_digit(s[i]); i++) {
      if (e < 100000) e = e * 10 + (s[i] - '0'); /* saturate: far beyond float range */
    }
    x.exp10 = eneg ? -e : e;
  }
  if (i != n) return -1;
  if (decimal_to_float(&x, neg, &value) != 0) return -1;
  *out = value;
  return 0;
}

/* ---- float to decimal ------------------------------------------------------------ */

/* A bounded text: appends never write past cap (which leaves room for the NUL). */
typedef struct {
  char *buf;
  size_t cap;
  size_t len;
} text_t;

static void put_char(text_t *o, char c) {
  if (o->len >= o->cap) return;
  o->buf[o->len++] = c;
}

static void put_str(text_t *o, const char *s) {
  while (*s != '\0') put_char(o, *s++);
}

static void put_uint(text_t *o, unsigned long v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0 && n < sizeof tmp);
  while (n > 0) put_char(o, tmp[--n]);
}

/* Starts a text in buf (cap bytes, NUL included); text_end terminates it and returns its
 * length. */
static void text_init(text_t *o, char *buf, size_t cap) {
  o->buf = cap == 0 ? NULL : buf;
  o->cap = o->buf == NULL ? 0 : cap - 1;
  o->len = 0;
}

static size_t text_end(text_t *o) {
  if (o->buf == NULL) return 0;
  o->buf[o->len] = '\0';
  return o->len;
}

/* Splits a float into sign, integer mantissa and binary exponent: |f| = mant * 2^e2.
 * Returns 0 for finite values, 1 for infinity, 2 for NaN. Assumes IEEE-754 binary32. */
static int float_parts(float f, int *neg, uint32_t *mant, int *e2) {
  uint32_t bits;
  uint32_t ex;
  uint32_t frac;
  memcpy(&bits, &f, sizeof bits);
  *neg = (int)(bits >> 31);
  ex = (bits >> 23) & 0xffu;
  frac = bits & 0x7fffffu;
  if (ex == 0xffu) return frac != 0 ? 2 : 1;
  if (ex == 0) {
    *mant = frac;
    *e2 = -149;
  } else {
    *mant = frac | 0x800000u;
    *e2 = (int)ex - 150;
  }
  return 0;
}

/* Appends the 4 fractional digits of frac (0..9999) without trailing zeros, with a point. */
static void put_frac4(text_t *o, unsigned frac) {
  char d[4];
  int n = 4;
  int i;
  for (i = 3; i >= 0; i--) {
    d[i] = (char)('0' + (int)(frac % 10u));
    frac /= 10u;
  }
  while (n > 0 && d[n - 1] == '0') n--;
  if (n == 0) return;
  put_char(o, '.');
  for (i = 0; i < n; i++) put_char(o, d[i]);
}

/* Compares m * 2^e2 with c * 10^k10 exactly: -1, 0, 1 (2 if it could not tell). */
static int cmp_dyadic_decimal(uint64_t m, int e2, uint64_t c, int k10) {
  big_t a;
  big_t b;
  big_set(&a, m);
  big_set(&b, c);
  return big_cmp_scaled(a, e2, 0, b, 0, k10);
}

/* floor(v / 10^e) for v = m * 2^e2 (v is the same value as a double), exactly. */
static uint64_t floor_scaled(uint64_t m, int e2, double v, int e) {
  double est = scale10(v, -e);
  uint64_t c = est < 1.8e19 ? (uint64_t)est : UINT64_C(18000000000000000000);
  if (c > 0 && cmp_dyadic_decimal(m, e2, c, e) < 0) c--; /* the estimate is off by <= 1 */
  if (cmp_dyadic_decimal(m, e2, c + 1u, e) >= 0) c++;
  return c;
}

/* v / 10^e rounded to an integer, ties to even, exactly. */
static uint64_t round_scaled(uint64_t m, int e2, double v, int e) {
  uint64_t c = floor_scaled(m, e2, v, e);
  int r = cmp_dyadic_decimal(m, e2 + 1, 2u * c + 1u, e); /* v against c + 1/2 */
  if (r == 1 || (r == 0 && (c & 1u) != 0)) c++;
  return c;
}

/* Appends (neg ? -1 : 1) * m * 2^e2 in the value format. Requires m < 2^40. */
static void put_dyadic(text_t *o, int neg, uint64_t m, int e2) {
  double v = (double)m; /* exact: m < 2^53, and scaling by 2 is exact in range */
  int i;
  if (m == 0) {
    put_char(o, '0');
    return;
  }
  for (i = 0; i < e2; i++) v *= 2.0;
  for (i = 0; i > e2; i--) v *= 0.5;

  if (v >= 1e9) { /* exponent form: 5 significant digits like %.4e, exact ties to even */
    int k = 9;
    int tries;
    uint64_t c = 0;
    while (k < 60 && v >= scale10(1.0, k + 1)) k++;
    for (tries = 0; tries < 6; tries++) { /* 10^k <= v < 10^(k+1), exactly */
      c = floor_scaled(m, e2, v, k - 4);
      if (c >= 100000u) {
        k++;
      } else if (c < 10000u) {
        k--;
      } else {
        break;
      }
    }
    c = round_scaled(m, e2, v, k - 4);
    if (c >= 100000u) {
      c = 10000u;
      k++;
    }
    if (neg) put_char(o, '-');
    put_char(o, (char)('0' + (int)(c / 10000u)));
    put_frac4(o, (unsigned)(c % 10000u));
    put_str(o, "e+");
    if (k < 10) put_char(o, '0');
    put_uint(o, (unsigned long)k);
    return;
  }

  {
    uint64_t ip; /* integer part */
    uint64_t q;  /* fraction in units of 1e-4, rounded */
    if (e2 >= 0) {
      ip = m << e2; /* v < 1e9 < 2^30, so no overflow */
      q = 0;
    } else if (e2 <= -64) {
      ip = 0;
      q = 0; /* m * 1e4 < 2^54 <= half of 2^64: rounds to 0 */
    } else {
      unsigned s = (unsigned)-e2;
      uint64_t r = m & ((UINT64_C(1) << s) - 1u);
      uint64_t t = r * 10000u; /* < 2^54 */
      uint64_t rem = t & ((UINT64_C(1) << s) - 1u);
      uint64_t half = UINT64_C(1) << (s - 1u);
      ip = m >> s;
      q = t >> s;
      if (rem > half || (rem == half && (q & 1u) != 0)) q++; /* exact, ties to even */
      if (q >= 10000u) {
        q -= 10000u;
        ip++;
      }
    }
    if (ip == 0 && q == 0) { /* includes -0 and tiny negatives */
      put_char(o, '0');
      return;
    }
    if (neg) put_char(o, '-');
    put_uint(o, (unsigned long)ip);
    put_frac4(o, (unsigned)q);
  }
}

static int put_nonfinite(text_t *o, int cls, int neg) {
  if (cls == 2) {
    put_str(o, "nan");
    return 1;
  }
  if (cls == 1) {
    put_str(o, neg ? "-inf" : "inf");
    return 1;
  }
  return 0;
}

static void put_value(text_t *o, float f) {
  int neg = 0;
  uint32_t m = 0;
  int e2 = 0;
  int cls = float_parts(f, &neg, &m, &e2); /* before neg is read: arguments are unsequenced */
  if (put_nonfinite(o, cls, neg)) return;
  put_dyadic(o, neg, m, e2);
}

static void put_scaled(text_t *o, int32_t k, float scale) {
  int neg = 0;
  uint32_t m = 0;
  int e2 = 0;
  uint32_t ak;
  int cls = float_parts(scale, &neg, &m, &e2);
  if (put_nonfinite(o, cls, neg != (k < 0))) return;
  ak = k < 0 ? 0u - (uint32_t)k : (uint32_t)k;
  if (ak > 65535u) ak = 65535u; /* keeps m < 2^40; int8 differences are at most 255 */
  put_dyadic(o, neg != (k < 0), (uint64_t)ak * m, e2);
}

static int count_digits(uint64_t v) {
  int n = 1;
  while (v >= 10u) {
    v /= 10u;
    n++;
  }
  return n;
}

static void put_shortest(text_t *o, float f) {
  int neg = 0;
  uint32_t m = 0;
  int e2 = 0;
  double a;
  int k = 0;
  int p;
  int tries;
  uint64_t best = 0;
  int best_k = 0;
  uint64_t pow_p = 1; /* 10^p */
  int cls = float_parts(f, &neg, &m, &e2);
  if (put_nonfinite(o, cls, neg)) return;
  if (m == 0) {
    put_char(o, '0');
    return;
  }
  a = neg ? -(double)f : (double)f;
  while (k < 40 && scale10(a, -k) >= 10.0) k++;
  while (k > -50 && scale10(a, -k) < 1.0) k--;
  for (tries = 0; tries < 4; tries++) { /* exactly 10^k <= a < 10^(k+1) */
    uint64_t c = floor_scaled(m, e2, a, k);
    if (c >= 10u) {
      k++;
    } else if (c < 1u) {
      k--;
    } else {
      break;
    }
  }

  for (p = 1; p <= 17; p++) {
    int e = k - p + 1; /* a / 10^e lies in [10^(p-1), 10^p) */
    uint64_t d = round_scaled(m, e2, a, e);
    int kk = k;
    float back = 0.0f;
    char text[24];
    decimal_t x;
    int nd;
    int j;
    uint64_t t;
    pow_p *= 10u;
    if (d >= pow_p) { /* rounded up to 10^p */
      d /= 10u;
      e++;
      kk++;
    }
    best = d;
    best_k = kk;
    nd = count_digits(d);
    for (t = d, j = nd - 1; j >= 0; j--) {
      text[j] = (char)('0' + (int)(t % 10u));
      t /= 10u;
    }
    memset(&x, 0, sizeof x);
    x.ip = text;
    x.ipn = (size_t)nd;
    x.fp = text + nd;
    x.exp10 = e;
    if (decimal_to_float(&x, 0, &back) == 0 && back == (neg ? -f : f)) break;
  }

  {
    char dig[20];
    int nd;
    int i;
    uint64_t d = best;
    int kk = best_k;
    nd = count_digits(d);
    for (i = nd - 1; i >= 0; i--) {
      dig[i] = (char)('0' + (int)(d % 10u));
      d /= 10u;
    }
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    if (neg) put_char(o, '-');
    if (a >= 1e-4 && a < 1e6) { /* where numpy's float32 repr is positional too */
      if (kk >= 0) {
        for (i = 0; i <= kk; i++) put_char(o, i < nd ? dig[i] : '0');
        if (nd > kk + 1) {
          put_char(o, '.');
          for (i = kk + 1; i < nd; i++) put_char(o, dig[i]);
        }
      } else {
        put_str(o, "0.");
        for (i = 0; i < -kk - 1; i++) put_char(o, '0');
        for (i = 0; i < nd; i++) put_char(o, dig[i]);
      }
    } else {
      put_char(o, dig[0]);
      if (nd > 1) {
        put_char(o, '.');
        for (i = 1; i < nd; i++) put_char(o, dig[i]);
      }
      put_char(o, 'e');
      put_char(o, kk < 0 ? '-' : '+');
      if (kk > -10 && kk < 10) put_char(o, '0');
      put_uint(o, (unsigned long)(kk < 0 ? -kk : kk));
    }
  }
}

size_t dec_format_scaled(char *buf, size_t cap, int32_t k, float scale) {
  text_t o;
  text_init(&o, buf, cap);
  put_scaled(&o, k, scale);
  return text_end(&o);
}

size_t dec_format_value(char *buf, size_t cap, float f) {
  text_t o;
  text_init(&o, buf, cap);
  put_value(&o, f);
  return text_end(&o);
}

size_t dec_format_shortest(char *buf, size_t cap, float f) {
  text_t o;
  text_init(&o, buf, cap);
  put_shortest(&o, f);
  return text_end(&o);
}

size_t dec_format_uint(char *buf, size_t cap, unsigned long v) {
  text_t o;
  text_init(&o, buf, cap);
  put_uint(&o, v);
  return text_end(&o);
}
