/* CONV_2D: TFLM's reference ConvPerChannel for int8 over the tables the emitter writes
 * (pipeline/int8/ops/conv_2d.py): per output position and channel, the window's taps on the input
 * (those on the padding are skipped: they would add 0 once offset), each (x + input_offset) * w,
 * summed in int32 with the bias, requantized by the channel's multiplier and shift, offset and
 * clamped to the fused activation. Grouped filters read their group's input channels. The portable
 * path: plain loops, correct for every shape the reference takes.
 *
 * The weights (pipeline/int8/ops/conv_2d.py's paired_weights): each filter's K = height x width x
 * depth codes rounded up to a multiple of four with zeros, the filters in pairs whose two rows are
 * interleaved a word (four codes) at a time; an odd last filter is its row alone. Both paths read
 * that layout. A layer whose every weight is applied at many pixels (conv_2d.py's wide_weights) has
 * them as int16 pairs instead (wide): per four codes two words, (0, 2) and (1, 3) as SXTB16 widens
 * a word of codes, a pair's two filters' words interleaved (two and two), twice the flash for four
 * fewer instructions per sixteen MACs.
 *
 * The DSP path (AOT_SIMD, ungrouped filters): two output pixels by two output channels a turn.
 * Each pixel's receptive field is gathered (im2col) into the scratch bytes the memory plan gives the
 * op, as int8 codes, taps on the padding filled with the input zero point, K rounded up with
 * zeros; a 1x1 filter without padding over a depth of a multiple of four reads the input in place.
 * The input offset is folded into the bias at build time (folded[oc] = bias[oc] + input_offset *
 * sum(w[oc]), in wrapping int32): a padded tap then adds (zero point + offset) * w = 0, as TFLM's
 * skipped tap adds nothing, and the dot product runs over raw codes. Per four codes: a word of each
 * pixel and of each filter, widened with SXTB16 (bytes 0 and 2; rotated by 8, bytes 1 and 3: the
 * same order on both sides, so the int8 weights need no widening at build time), and eight SMLADs
 * for sixteen multiply-accumulates: 20 instructions, in one asm block (with its 13 registers GCC's
 * allocation of the same C spilled); 16 with wide weights (two LDRDs of widened weights instead of
 * two LDRs and four SXTB16s). All sums wrap in int32, as TFLM's accumulator: the two paths agree to
 * the bit.
 *
 * In place: a 1x1 layer of stride 1 with as many output as input channels (in_place) may be given
 * its input's bytes for its output by the memory plan; the kernels then copy each pixel's (pair's)
 * codes to the scratch before writing its outputs.
 *
 * Fused with an ADD (pipeline/int8/fusion.py: a residual block's last convolution and its sum with
 * the skip): each output code goes through the ADD with the skip's code at the same index
 * (aot_conv_2d_add), so the convolution's own output tensor never exists, and the plan may write
 * the sum over the skip (each index is read once, just before it is written). */
#ifndef AOT_CONV_2D_H
#define AOT_CONV_2D_H

#include "aot/add.h"
#include "aot/common.h"

struct aot_conv_2d {
  int in_h, in_w, in_c;
  int out_h, out_w, out_c;
  int k_h, k_w;
  int stride_h, stride_w;
  int dilation_h, dilation_w;
  int pad_h, pad_w;             /* padding before the first row and column */
  int groups;                   /* in_c / the filter's depth */
  const int8_t *weights;        /* [out_c][k_h][k_w][in_c / groups] */
  const int32_t *bias;          /* [out_c] */
  const int32_t *multipliers;   /* [out_c] */
  const int8_t *shifts;         /* [out_c] */
  int32_t input_offset;         /* -input zero point */
  int32_t output_offset;        /* output zero point */
  int32_t act_min, act_max;
  const int32_t *channels;      /* [out_c][4]: the DSP path's records (aot/common.h's aot_channels) */
  int quick;                    /* 1: the records hold requantize_quick's constants */
  int direct;                   /* 1: 1x1 filter, no padding, depth a multiple of 4: no im2col */
  const int32_t *wide;          /* or null: the weights as int16 pairs (above), weights then null */
  int in_place;                 /* 1: the scratch can hold the pixels' codes for running over the input */
  int windowed;                 /* 1: a pixel pair's fields gathered as one window (conv_2d_windowed) */
  const struct aot_add *add;    /* or null: the ADD each output goes through with the skip's code */
  int add_conv_first;           /* 1: the convolution's code is the ADD's first operand */
};

/* Output code y at index i: the convolution's, or its ADD's with the skip's code there. */
AOT_INLINE int8_t conv_2d_out(const struct aot_conv_2d *op, const int8_t *skip, int32_t i, int8_t y) {
  if (!op->add) return y;
  return op->add_conv_first ? add_code(op->add, y, skip[i]) : add_code(op->add, skip[i], y);
}

/* Code i of filter oc's K, in the paired layout (above), int8 or wide. */
AOT_INLINE int32_t conv_2d_weight(const struct aot_conv_2d *op, int oc, int i) {
  const int n = (op->k_h * op->k_w * (op->in_c / op->groups) + 3) & ~3, paired = oc < (op->out_c & ~1);
  if (op->wide) {
    const int word = (paired ? (oc / 2) * n + (i / 4) * 4 + (oc & 1) * 2 : oc * n / 2 + (i / 4) * 2) + (i & 1);
    const uint32_t pair = (uint32_t)op->wide[word];
    return (int16_t)(uint16_t)((i & 2) ? pair >> 16 : pair & 0xFFFFu);
  }
  if (paired) return op->weights[(oc & ~1) * n + (i / 4) * 8 + (oc & 1) * 4 + i % 4];
  return op->weights[oc * n + i];
}

#if AOT_SIMD
/* Pixel (oy, ox)'s receptive field as K codes at dst, the padding's taps the input zero point; with
 * taps_w = k_w + 1 (no dilation along the row), the window of the pixel and the next one right. */
AOT_INLINE void conv_2d_gather(const struct aot_conv_2d *op, const int8_t *input, int oy, int ox, int taps_w,
                               int8_t *dst) {
  const int8_t zero_point = (int8_t)-op->input_offset;
  const int c = op->in_c, row = taps_w * c;
  const int iy0 = oy * op->stride_h - op->pad_h, ix0 = ox * op->stride_w - op->pad_w;
  for (int ky = 0; ky < op->k_h; ++ky, dst += row) {
    const int iy = iy0 + ky * op->dilation_h;
    if (iy < 0 || iy >= op->in_h) {
      memset(dst, zero_point, (size_t)row);
      continue;
    }
    const int8_t *line = input + iy * op->in_w * c;
    if (op->dilation_w == 1) { /* the row's taps are adjacent: one copy between two fills */
      int lo = -ix0 > 0 ? -ix0 : 0, hi = op->in_w - ix0 < taps_w ? op->in_w - ix0 : taps_w;
      if (hi < lo) hi = lo;
      if (lo > 0) memset(dst, zero_point, (size_t)(lo * c));
      if (hi > lo) memcpy(dst + lo * c, line + (ix0 + lo) * c, (size_t)((hi - lo) * c));
      if (hi < taps_w) memset(dst + hi * c, zero_point, (size_t)((taps_w - hi) * c));
      continue;
    }
    for (int kx = 0; kx < op->k_w; ++kx) {
      const int ix = ix0 + kx * op->dilation_w;
      if (ix < 0 || ix >= op->in_w) memset(dst + kx * c, zero_point, (size_t)c);
      else memcpy(dst + kx * c, line + ix * c, (size_t)c);
    }
  }
}

/* Where pixel p's K codes are: the input itself (direct), else gathered into dst. */
AOT_INLINE const int8_t *conv_2d_patch(const struct aot_conv_2d *op, const int8_t *input, int p, int8_t *dst,
                                       int in_place) {
  const int oy = p / op->out_w, ox = p % op->out_w;
  if (op->direct && !in_place) return input + ((oy * op->stride_h) * op->in_w + ox * op->stride_w) * op->in_c;
  conv_2d_gather(op, input, oy, ox, op->k_w, dst);
  return dst;
}

#if defined(__ARM_FEATURE_DSP)
/* Four codes of two pixels (x0, x1) times a filter pair's two words (w): 20 instructions for 16
 * multiply-accumulates, s00 = x0.w0, s10 = x1.w0, s01 = x0.w1, s11 = x1.w1. Each word's two halves
 * are widened into two registers (bytes 0, 2 in place; bytes 1, 3 beside), so six temporaries. */
#define AOT_CONV_GROUP                          \
  "ldr %[a], [%[x0]], #4\n\t"                   \
  "ldr %[b], [%[x1]], #4\n\t"                   \
  "ldr %[u], [%[w]], #4\n\t"                    \
  "sxtb16 %[ao], %[a], ror #8\n\t"              \
  "sxtb16 %[a], %[a]\n\t"                       \
  "sxtb16 %[bo], %[b], ror #8\n\t"              \
  "sxtb16 %[b], %[b]\n\t"                       \
  "sxtb16 %[uo], %[u], ror #8\n\t"              \
  "sxtb16 %[u], %[u]\n\t"                       \
  "smlad %[s00], %[a], %[u], %[s00]\n\t"        \
  "smlad %[s00], %[ao], %[uo], %[s00]\n\t"      \
  "smlad %[s10], %[b], %[u], %[s10]\n\t"        \
  "smlad %[s10], %[bo], %[uo], %[s10]\n\t"      \
  "ldr %[u], [%[w]], #4\n\t"                    \
  "sxtb16 %[uo], %[u], ror #8\n\t"              \
  "sxtb16 %[u], %[u]\n\t"                       \
  "smlad %[s01], %[a], %[u], %[s01]\n\t"        \
  "smlad %[s01], %[ao], %[uo], %[s01]\n\t"      \
  "smlad %[s11], %[b], %[u], %[s11]\n\t"        \
  "smlad %[s11], %[bo], %[uo], %[s11]\n\t"
#define AOT_CONV_GROUP_OPERANDS                                                                              \
  : [s00] "+r"(s00), [s10] "+r"(s10), [s01] "+r"(s01), [s11] "+r"(s11), [x0] "+r"(x0), [x1] "+r"(x1),        \
    [w] "+r"(w), [a] "=&r"(a), [ao] "=&r"(ao), [b] "=&r"(b), [bo] "=&r"(bo), [u] "=&r"(u), [uo] "=&r"(uo)    \
  : "m"(*(const struct aot_conv_words *)x0), "m"(*(const struct aot_conv_words *)x1),                        \
    "m"(*(const struct aot_conv_words *)w)
struct aot_conv_words {
  int8_t code[8];
};
/* The same with wide weights: each filter's two words of int16 pairs in one LDRD, 16 instructions. */
#define AOT_CONV_GROUP16                        \
  "ldr %[a], [%[x0]], #4\n\t"                   \
  "ldr %[b], [%[x1]], #4\n\t"                   \
  "sxtb16 %[ao], %[a], ror #8\n\t"              \
  "sxtb16 %[a], %[a]\n\t"                       \
  "sxtb16 %[bo], %[b], ror #8\n\t"              \
  "sxtb16 %[b], %[b]\n\t"                       \
  "ldrd %[u], %[uo], [%[w]], #8\n\t"            \
  "smlad %[s00], %[a], %[u], %[s00]\n\t"        \
  "smlad %[s00], %[ao], %[uo], %[s00]\n\t"      \
  "smlad %[s10], %[b], %[u], %[s10]\n\t"        \
  "smlad %[s10], %[bo], %[uo], %[s10]\n\t"      \
  "ldrd %[u], %[uo], [%[w]], #8\n\t"            \
  "smlad %[s01], %[a], %[u], %[s01]\n\t"        \
  "smlad %[s01], %[ao], %[uo], %[s01]\n\t"      \
  "smlad %[s11], %[b], %[u], %[s11]\n\t"        \
  "smlad %[s11], %[bo], %[uo], %[s11]\n\t"
#endif

/* The wide counterpart of conv_2d_dot2x2: w, a pair's int16 words (four per four codes). */
AOT_INLINE void conv_2d_dot2x2_wide(const int8_t *x0, const int8_t *x1, const int32_t *w, int n, int32_t *s) {
  int32_t s00 = s[0], s10 = s[1], s01 = s[2], s11 = s[3];
#if defined(__ARM_FEATURE_DSP)
  int32_t a, ao, b, bo, u, uo;
  /* sixteen codes a turn: the count lives on the stack (the asm leaves no register), so its
   * load, decrement, store and branch are paid once per 64 MACs */
  for (int turns = n / 16; turns > 0; --turns) __asm__(AOT_CONV_GROUP16 AOT_CONV_GROUP16 AOT_CONV_GROUP16 AOT_CONV_GROUP16 AOT_CONV_GROUP_OPERANDS);
  if (n & 8) __asm__(AOT_CONV_GROUP16 AOT_CONV_GROUP16 AOT_CONV_GROUP_OPERANDS);
  if (n & 4) __asm__(AOT_CONV_GROUP16 AOT_CONV_GROUP_OPERANDS);
#else
  for (int i = 0; i < n; i += 4, w += 4) {
    const int32_t a = aot_word(x0 + i), b = aot_word(x1 + i);
    const int32_t ae = __sxtb16(a), be = __sxtb16(b), ao = aot_sxtb16_ror8(a), bo = aot_sxtb16_ror8(b);
    s00 = __smlad(ao, w[1], __smlad(ae, w[0], s00));
    s10 = __smlad(bo, w[1], __smlad(be, w[0], s10));
    s01 = __smlad(ao, w[3], __smlad(ae, w[2], s01));
    s11 = __smlad(bo, w[3], __smlad(be, w[2], s11));
  }
#endif
  s[0] = s00, s[1] = s10, s[2] = s01, s[3] = s11;
}

/* One pixel times one wide filter over n codes, the filter's two words a group `step` words apart. */
AOT_INLINE int32_t conv_2d_dot_wide(const int8_t *x, const int32_t *w, int step, int n, int32_t acc) {
  for (int i = 0; i < n; i += 4, w += step) {
    const int32_t a = aot_word(x + i);
    acc = __smlad(__sxtb16(a), w[0], acc);
    acc = __smlad(aot_sxtb16_ror8(a), w[1], acc);
  }
  return acc;
}

/* Two pixels (x0, x1) times a filter pair (w, its rows interleaved a word at a time) over n codes,
 * n a multiple of 4: s[0] = x0.w0, s[1] = x1.w0, s[2] = x0.w1, s[3] = x1.w1, added to what s holds. */
AOT_INLINE void conv_2d_dot2x2(const int8_t *x0, const int8_t *x1, const int8_t *w, int n, int32_t *s) {
  int32_t s00 = s[0], s10 = s[1], s01 = s[2], s11 = s[3];
#if defined(__ARM_FEATURE_DSP)
  int32_t a, ao, b, bo, u, uo;
  /* sixteen codes a turn: the count lives on the stack (the asm leaves no register), so its
   * load, decrement, store and branch are paid once per 64 MACs */
  for (int turns = n / 16; turns > 0; --turns) __asm__(AOT_CONV_GROUP AOT_CONV_GROUP AOT_CONV_GROUP AOT_CONV_GROUP AOT_CONV_GROUP_OPERANDS);
  if (n & 8) __asm__(AOT_CONV_GROUP AOT_CONV_GROUP AOT_CONV_GROUP_OPERANDS);
  if (n & 4) __asm__(AOT_CONV_GROUP AOT_CONV_GROUP_OPERANDS);
#else
  for (int i = 0; i < n; i += 4, w += 8) {
    const int32_t a = aot_word(x0 + i), b = aot_word(x1 + i), u = aot_word(w), v = aot_word(w + 4);
    const int32_t ae = __sxtb16(a), be = __sxtb16(b), ue = __sxtb16(u), ve = __sxtb16(v);
    const int32_t ao = aot_sxtb16_ror8(a), bo = aot_sxtb16_ror8(b), uo = aot_sxtb16_ror8(u), vo = aot_sxtb16_ror8(v);
    s00 = __smlad(ao, uo, __smlad(ae, ue, s00));
    s10 = __smlad(bo, uo, __smlad(be, ue, s10));
    s01 = __smlad(ao, vo, __smlad(ae, ve, s01));
    s11 = __smlad(bo, vo, __smlad(be, ve, s11));
  }
#endif
  s[0] = s00, s[1] = s10, s[2] = s01, s[3] = s11;
}

/* One pixel times one filter over n codes (n a multiple of 4), the filter's words `step` bytes apart
 * (8 in a pair, 4 alone). */
AOT_INLINE int32_t conv_2d_dot(const int8_t *x, const int8_t *w, int step, int n, int32_t acc) {
  for (int i = 0; i < n; i += 4, w += step) {
    const int32_t a = aot_word(x + i), u = aot_word(w);
    acc = __smlad(__sxtb16(a), __sxtb16(u), acc);
    acc = __smlad(aot_sxtb16_ror8(a), aot_sxtb16_ror8(u), acc);
  }
  return acc;
}

/* Filter oc's first word and the step between its words, in the paired layout. */
AOT_INLINE const int8_t *conv_2d_row(const struct aot_conv_2d *op, int oc, int n, int *step) {
  const int paired = oc < (op->out_c & ~1);
  *step = paired ? 8 : 4;
  return op->weights + (paired ? (oc & ~1) * n + (oc & 1) * 4 : oc * n);
}


/* The DSP path with a pixel pair's fields as one window (conv_2d.py's windowed: stride and dilation 1
 * along the row, an even output width, rows of whole words): k_h rows of k_w + 1 pixels, pixel
 * ox's field the first k_w of each row and ox + 1's the last k_w, so each filter row is one dot
 * product per pixel, its weights a whole number of groups into the filter's. */
AOT_INLINE void conv_2d_windowed(const struct aot_conv_2d *op, const int8_t *input, const int8_t *skip,
                                 int8_t *scratch, int8_t *output) {
  const int c = op->in_c, row = op->k_w * c, stride = row + c, n = op->k_h * row;
  const int out_c = op->out_c, pairs = out_c & ~1;
  const struct aot_channels q = {op->channels, op->quick, op->output_offset, op->act_min, op->act_max};
  for (int p = 0; p < op->out_h * op->out_w; p += 2) {
    conv_2d_gather(op, input, p / op->out_w, p % op->out_w, op->k_w + 1, scratch);
    int8_t *y0 = output + p * out_c, *y1 = y0 + out_c;
    for (int oc = 0; oc < pairs; oc += 2) {
      int32_t s[4] = {q.records[4 * oc], q.records[4 * oc], q.records[4 * (oc + 1)], q.records[4 * (oc + 1)]};
      for (int ky = 0; ky < op->k_h; ++ky) {
        const int8_t *x = scratch + ky * stride;
        if (op->wide) conv_2d_dot2x2_wide(x, x + c, op->wide + oc * n / 2 + ky * row, row, s);
        else conv_2d_dot2x2(x, x + c, op->weights + oc * n + 2 * ky * row, row, s);
      }
      y0[oc] = conv_2d_out(op, skip, p * out_c + oc, aot_channel_out(q, oc, s[0]));
      y1[oc] = conv_2d_out(op, skip, (p + 1) * out_c + oc, aot_channel_out(q, oc, s[1]));
      y0[oc + 1] = conv_2d_out(op, skip, p * out_c + oc + 1, aot_channel_out(q, oc + 1, s[2]));
      y1[oc + 1] = conv_2d_out(op, skip, (p + 1) * out_c + oc + 1, aot_channel_out(q, oc + 1, s[3]));
    }
    if (pairs < out_c) { /* an odd last filter: its row alone */
      int32_t s0 = q.records[4 * pairs], s1 = s0;
      for (int ky = 0; ky < op->k_h; ++ky) {
        const int8_t *x = scratch + ky * stride;
        if (op->wide) {
          s0 = conv_2d_dot_wide(x, op->wide + pairs * n / 2 + ky * row / 2, 2, row, s0);
          s1 = conv_2d_dot_wide(x + c, op->wide + pairs * n / 2 + ky * row / 2, 2, row, s1);
        } else {
          s0 = conv_2d_dot(x, op->weights + pairs * n + ky * row, 4, row, s0);
          s1 = conv_2d_dot(x + c, op->weights + pairs * n + ky * row, 4, row, s1);
        }
      }
      y0[pairs] = conv_2d_out(op, skip, p * out_c + pairs, aot_channel_out(q, pairs, s0));
      y1[pairs] = conv_2d_out(op, skip, (p + 1) * out_c + pairs, aot_channel_out(q, pairs, s1));
    }
  }
}

AOT_INLINE void conv_2d_simd(const struct aot_conv_2d *op, const int8_t *input, const int8_t *skip, int8_t *scratch,
                             int8_t *output) {
  const int k = op->k_h * op->k_w * op->in_c, n = (k + 3) & ~3, pixels = op->out_h * op->out_w;
  const int out_c = op->out_c, pairs = out_c & ~1;
  const struct aot_channels q = {op->channels, op->quick, op->output_offset, op->act_min, op->act_max};
  const int8_t *const weights = op->weights;
  const int32_t *const wide = op->wide;
  /* written over its input (a 1x1 layer the plan put in place): both pixels' codes are copied out
   * before their outputs are written */
  const int in_place = op->in_place && output == input;
  if (!op->direct || in_place) memset(scratch, 0, (size_t)(2 * n)); /* the rounding's zeros, after each K */
  int p = 0;
  for (; p + 1 < pixels; p += 2) {
    const int8_t *x0 = conv_2d_patch(op, input, p, scratch, in_place);
    const int8_t *x1 = conv_2d_patch(op, input, p + 1, scratch + n, in_place);
    int8_t *y0 = output + p * out_c, *y1 = y0 + out_c;
    for (int oc = 0; oc < pairs; oc += 2) {
      int32_t s[4] = {q.records[4 * oc], q.records[4 * oc], q.records[4 * (oc + 1)], q.records[4 * (oc + 1)]};
      if (wide) conv_2d_dot2x2_wide(x0, x1, wide + oc * n / 2, n, s);
      else conv_2d_dot2x2(x0, x1, weights + oc * n, n, s);
      y0[oc] = conv_2d_out(op, skip, p * out_c + oc, aot_channel_out(q, oc, s[0]));
      y1[oc] = conv_2d_out(op, skip, (p + 1) * out_c + oc, aot_channel_out(q, oc, s[1]));
      y0[oc + 1] = conv_2d_out(op, skip, p * out_c + oc + 1, aot_channel_out(q, oc + 1, s[2]));
      y1[oc + 1] = conv_2d_out(op, skip, (p + 1) * out_c + oc + 1, aot_channel_out(q, oc + 1, s[3]));
    }
    if (pairs < out_c) { /* an odd last filter: its row alone */
      int32_t s0 = q.records[4 * pairs], s1 = q.records[4 * pairs];
      if (wide) {
        s0 = conv_2d_dot_wide(x0, wide + pairs * n / 2, 2, n, s0);
        s1 = conv_2d_dot_wide(x1, wide + pairs * n / 2, 2, n, s1);
      } else {
        s0 = conv_2d_dot(x0, weights + pairs * n, 4, n, s0);
        s1 = conv_2d_dot(x1, weights + pairs * n, 4, n, s1);
      }
      y0[pairs] = conv_2d_out(op, skip, p * out_c + pairs, aot_channel_out(q, pairs, s0));
      y1[pairs] = conv_2d_out(op, skip, (p + 1) * out_c + pairs, aot_channel_out(q, pairs, s1));
    }
  }
  if (p < pixels) { /* an odd last pixel */
    const int8_t *x0 = conv_2d_patch(op, input, p, scratch, in_place);
    for (int oc = 0; oc < out_c; ++oc) {
      int32_t acc;
      if (wide) { /* a pair's filter: words 2 and 2 interleaved (4 a group); alone: 2 a group */
        const int paired = oc < pairs;
        acc = conv_2d_dot_wide(x0, wide + (paired ? (oc & ~1) * n / 2 + (oc & 1) * 2 : oc * n / 2), paired ? 4 : 2,
                               n, q.records[4 * oc]);
      } else {
        int step;
        const int8_t *w = conv_2d_row(op, oc, n, &step);
        acc = conv_2d_dot(x0, w, step, n, q.records[4 * oc]);
      }
      output[p * out_c + oc] = conv_2d_out(op, skip, p * out_c + oc, aot_channel_out(q, oc, acc));
    }
  }
}
#endif

/* The convolution (skip null) or the convolution fused with its ADD (skip: the other operand). */
AOT_INLINE void conv_2d_run(const struct aot_conv_2d *op, const int8_t *input, const int8_t *skip, int8_t *scratch,
                            int8_t *output) {
#if AOT_SIMD
  if (op->groups == 1) {
    if (op->windowed) conv_2d_windowed(op, input, skip, scratch, output);
    else conv_2d_simd(op, input, skip, scratch, output);
    return;
  }
#endif
  /* in place (a 1x1 layer, stride 1, no padding): each pixel's codes copied out before it is written */
  const int in_place = op->in_place && output == input;
  const int depth = op->in_c / op->groups, per_group = op->out_c / op->groups;
  for (int oy = 0; oy < op->out_h; ++oy) {
    const int iy0 = oy * op->stride_h - op->pad_h;
    for (int ox = 0; ox < op->out_w; ++ox) {
      const int ix0 = ox * op->stride_w - op->pad_w;
      if (in_place) memcpy(scratch, input + (iy0 * op->in_w + ix0) * op->in_c, (size_t)op->in_c);
      for (int oc = 0; oc < op->out_c; ++oc) {
        const int first = (oc / per_group) * depth;
        uint32_t acc = 0; /* TFLM's int32 sum, wrapping */
        for (int ky = 0; ky < op->k_h; ++ky) {
          const int iy = iy0 + ky * op->dilation_h;
          if (iy < 0 || iy >= op->in_h) continue;
          for (int kx = 0; kx < op->k_w; ++kx) {
            const int ix = ix0 + kx * op->dilation_w;
            if (ix < 0 || ix >= op->in_w) continue;
            const int8_t *x = (in_place ? scratch : input + (iy * op->in_w + ix) * op->in_c) + first;
            const int tap = (ky * op->k_w + kx) * depth;
            for (int c = 0; c < depth; ++c)
              acc += (uint32_t)((x[c] + op->input_offset) * conv_2d_weight(op, oc, tap + c));
          }
        }
        acc += (uint32_t)op->bias[oc];
        const int32_t at = (oy * op->out_w + ox) * op->out_c + oc;
        output[at] = conv_2d_out(op, skip, at, output_code(requantize_offset((int32_t)acc, op->multipliers[oc],
                                                                             op->shifts[oc], op->output_offset),
                                                           op->act_min, op->act_max));
      }
    }
  }
}

AOT_INLINE AOT_UNUSED void aot_conv_2d(const struct aot_conv_2d *op, const int8_t *input, int8_t *scratch,
                                       int8_t *output) {
  conv_2d_run(op, input, 0, scratch, output);
}

/* The convolution fused with its ADD: skip, the ADD's other operand, may be the output's own bytes. */
AOT_INLINE AOT_UNUSED void aot_conv_2d_add(const struct aot_conv_2d *op, const int8_t *input, const int8_t *skip,
                                           int8_t *scratch, int8_t *output) {
  conv_2d_run(op, input, skip, scratch, output);
}

#endif
