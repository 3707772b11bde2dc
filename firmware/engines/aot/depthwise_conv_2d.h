/* DEPTHWISE_CONV_2D: TFLM's reference DepthwiseConvPerChannel for int8 over the emitter's tables
 * (pipeline/int8/ops/depthwise_conv_2d.py): output channel c * multiplier + m is input channel c's
 * window times its own filter, taps on the padding skipped, the bias added to the int32 sum,
 * requantized per channel. The portable path.
 *
 * The DSP path (AOT_SIMD, a multiplier of 1, at most AOT_DEPTHWISE_TAPS taps): per output pixel, a
 * pointer per tap to its input pixel's channels, or, for a tap on the padding, to a row of the input
 * zero point (the op's scratch bytes in the arena); the input offset folded into the bias at build
 * time (bias + input_offset * the channel's weight sum, wrapping int32), so a padded tap adds
 * (zero point + offset) * w = 0, as TFLM's skipped tap adds nothing. Four channels a turn: per tap
 * one word of input codes and one of weights, each widened by SXTB16 (channels 0 and 2; rotated, 1
 * and 3), four 16x16 multiply-accumulates (SMLABB, SMLATT), so 11 instructions per 4 MACs with the
 * tap's pointer, in one asm block (GCC's own unrolling of the same C spilled every widened word);
 * 3x3 filters unrolled whole. Channels past the last four, one at a time. The DSP path's weights
 * (pipeline/int8/ops/depthwise_conv_2d.py's quad_weights) are in channel fours, each four's taps
 * in a row (one post-incremented load a tap), then the last channels' [tap][channel]; both paths
 * read that layout (depthwise_weight). */
#ifndef AOT_DEPTHWISE_CONV_2D_H
#define AOT_DEPTHWISE_CONV_2D_H

#include "aot/common.h"

struct aot_depthwise_conv_2d {
  int in_h, in_w, in_c;
  int out_h, out_w, out_c;      /* out_c = in_c * multiplier */
  int k_h, k_w;
  int stride_h, stride_w;
  int dilation_h, dilation_w;
  int pad_h, pad_w;
  const int8_t *weights;        /* [k_h][k_w][out_c], or with fast the quad layout (above) */
  const int32_t *bias;          /* [out_c] */
  const int32_t *multipliers;   /* [out_c] */
  const int8_t *shifts;         /* [out_c] */
  int32_t input_offset;
  int32_t output_offset;
  int32_t act_min, act_max;
  const int32_t *channels;      /* [out_c][4]: the DSP path's records (aot/common.h's aot_channels) */
  int quick;                    /* 1: the records hold requantize_quick's constants */
  int fast;                     /* 1: the DSP path takes the layer (multiplier 1, few enough taps) */
  int in_place;                 /* 1: the scratch holds the ring of rows for running over the input */
};

#define AOT_DEPTHWISE_TAPS 25 /* the DSP path's most taps (a 5x5 filter): their pointers on the stack */

/* The weight of tap t (ky * k_w + kx) for output channel oc. */
AOT_INLINE int8_t depthwise_weight(const struct aot_depthwise_conv_2d *op, int t, int oc) {
  if (!op->fast) return op->weights[t * op->out_c + oc];
  const int taps = op->k_h * op->k_w, quads = op->out_c & ~3;
  if (oc < quads) return op->weights[(oc / 4) * taps * 4 + t * 4 + oc % 4];
  return op->weights[quads * taps + t * (op->out_c - quads) + oc - quads];
}

/* Where input row iy's codes are. Written over its input (a stride-1 layer the plan put in place),
 * the kernel first copies each input row into a ring of pad_h + 1 rows in the scratch (after the
 * zero-point pixel), just before that row's outputs overwrite it: rows up to the current output row
 * oy are read there (the window reaches back pad_h rows at most), later ones in place. */
AOT_INLINE const int8_t *depthwise_row(const struct aot_depthwise_conv_2d *op, const int8_t *input,
                                       const int8_t *ring, int iy, int oy) {
  const int row = op->in_w * op->in_c;
  return ring && iy <= oy ? ring + (iy % (op->pad_h + 1)) * row : input + iy * row;
}

/* In place, output row oy's input row into its ring slot before the row is written. */
AOT_INLINE void depthwise_save_row(const struct aot_depthwise_conv_2d *op, const int8_t *input, int8_t *ring,
                                   int oy) {
  const int row = op->in_w * op->in_c;
  if (ring) memcpy(ring + (oy % (op->pad_h + 1)) * row, input + oy * row, (size_t)row);
}

#if AOT_SIMD
/* s += the low halves' product, and the high halves' (SMLABB, SMLATT on the M4), wrapping. */
AOT_INLINE int32_t mla_bottom(int32_t a, int32_t b, int32_t s) {
  return (int32_t)((uint32_t)s + (uint32_t)((int32_t)(int16_t)(uint16_t)((uint32_t)a & 0xFFFFu) *
                                            (int32_t)(int16_t)(uint16_t)((uint32_t)b & 0xFFFFu)));
}
AOT_INLINE int32_t mla_top(int32_t a, int32_t b, int32_t s) {
  return (int32_t)((uint32_t)s + (uint32_t)((a >> 16) * (b >> 16)));
}

#if defined(__ARM_FEATURE_DSP)
/* One tap of four channels: the tap's table word (a pointer, or an offset from base), its word of
 * codes there plus `add` (c, or base + c), the four weights. */
#define AOT_DEPTHWISE_TAP                  \
  "ldr %[x], [%[tp]], #4\n\t"              \
  "ldr %[x], [%[x], %[c]]\n\t"             \
  "ldr %[u], [%[w]], #4\n\t"               \
  "sxtb16 %[xo], %[x], ror #8\n\t"         \
  "sxtb16 %[x], %[x]\n\t"                  \
  "sxtb16 %[uo], %[u], ror #8\n\t"         \
  "sxtb16 %[u], %[u]\n\t"                  \
  "smlabb %[s0], %[x], %[u], %[s0]\n\t"    \
  "smlatt %[s2], %[x], %[u], %[s2]\n\t"    \
  "smlabb %[s1], %[xo], %[uo], %[s1]\n\t"  \
  "smlatt %[s3], %[xo], %[uo], %[s3]\n\t"
#define AOT_DEPTHWISE_OPERANDS                                                                          \
  : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [tp] "+r"(tp), [w] "+r"(w), [x] "=&r"(x), \
    [xo] "=&r"(xo), [u] "=&r"(u), [uo] "=&r"(uo)                                                        \
  : [c] "r"(add)                                                                                        \
  : "memory" /* it reads the taps' table, the input and the weights: no register to spare for "m" operands */
#endif

/* Four channels' sums over the taps: s[j] for channel c + j; w, the four's weights, a word a tap. A
 * pixel whose window lies inside the input reads tap t at base + offsets[t] (the layer's constant
 * offsets: nothing to set up per pixel); one on the border (base null) at taps[t], the padding's
 * taps pointing at the zero-point pixel. On the M4 both are one asm block: a word of the table, then
 * the codes at that word plus c, or plus base + c. */
AOT_INLINE void depthwise_four(const int8_t *const *taps, const int32_t *offsets, const int8_t *base, int count,
                               const int8_t *w, int c, int32_t *s) {
  int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#if defined(__ARM_FEATURE_DSP)
  const void *tp = base ? (const void *)offsets : (const void *)taps;
  const int32_t add = base ? (int32_t)(uintptr_t)(base + c) : c; /* 32-bit pointers on the M4 */
  int32_t x, xo, u, uo;
  if (count == 9) {
    __asm__(AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP
            AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_TAP AOT_DEPTHWISE_OPERANDS);
  } else {
    for (int t = 0; t < count; ++t) __asm__(AOT_DEPTHWISE_TAP AOT_DEPTHWISE_OPERANDS);
  }
#else
  for (int t = 0; t < count; ++t, w += 4) {
    const int32_t x = aot_word((base ? base + offsets[t] : taps[t]) + c), u = aot_word(w);
    const int32_t xe = __sxtb16(x), ue = __sxtb16(u), xo = aot_sxtb16_ror8(x), uo = aot_sxtb16_ror8(u);
    s0 = mla_bottom(xe, ue, s0);
    s2 = mla_top(xe, ue, s2);
    s1 = mla_bottom(xo, uo, s1);
    s3 = mla_top(xo, uo, s3);
  }
#endif
  s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}

AOT_INLINE void depthwise_simd(const struct aot_depthwise_conv_2d *op, const int8_t *input, int8_t *scratch,
                           int8_t *output) {
  const int channels = op->in_c, count = op->k_h * op->k_w, quads = channels & ~3;
  const int8_t *taps[AOT_DEPTHWISE_TAPS];
  const struct aot_channels q = {op->channels, op->quick, op->output_offset, op->act_min, op->act_max};
  const int8_t *const weights = op->weights;
  int32_t offsets[AOT_DEPTHWISE_TAPS];
  for (int ky = 0, t = 0; ky < op->k_h; ++ky)
    for (int kx = 0; kx < op->k_w; ++kx, ++t)
      offsets[t] = (ky * op->dilation_h * op->in_w + kx * op->dilation_w) * channels;
  const int reach_h = (op->k_h - 1) * op->dilation_h, reach_w = (op->k_w - 1) * op->dilation_w;
  memset(scratch, (int8_t)-op->input_offset, (size_t)channels); /* the padding's pixel */
  int8_t *const ring = op->in_place && output == input ? scratch + ((channels + 3) & ~3) : 0;
  for (int oy = 0; oy < op->out_h; ++oy) {
    const int iy0 = oy * op->stride_h - op->pad_h;
    depthwise_save_row(op, input, ring, oy);
    for (int ox = 0; ox < op->out_w; ++ox) {
      const int ix0 = ox * op->stride_w - op->pad_w;
      const int inside = !ring && iy0 >= 0 && iy0 + reach_h < op->in_h && ix0 >= 0 && ix0 + reach_w < op->in_w;
      const int8_t *const base = inside ? input + (iy0 * op->in_w + ix0) * channels : 0;
      for (int ky = 0, t = 0; !inside && ky < op->k_h; ++ky) {
        const int iy = iy0 + ky * op->dilation_h;
        for (int kx = 0; kx < op->k_w; ++kx, ++t) {
          const int ix = ix0 + kx * op->dilation_w;
          taps[t] = (iy < 0 || iy >= op->in_h || ix < 0 || ix >= op->in_w)
                        ? scratch
                        : depthwise_row(op, input, ring, iy, oy) + ix * channels;
        }
      }
      int8_t *y = output + (oy * op->out_w + ox) * channels;
      int c = 0;
      for (; c < quads; c += 4) {
        int32_t s[4] = {q.records[4 * c], q.records[4 * (c + 1)], q.records[4 * (c + 2)], q.records[4 * (c + 3)]};
        depthwise_four(taps, offsets, base, count, weights + c * count, c, s);
        y[c] = aot_channel_out(q, c, s[0]);
        y[c + 1] = aot_channel_out(q, c + 1, s[1]);
        y[c + 2] = aot_channel_out(q, c + 2, s[2]);
        y[c + 3] = aot_channel_out(q, c + 3, s[3]);
      }
      for (; c < channels; ++c) { /* the last one to three channels */
        uint32_t acc = (uint32_t)q.records[4 * c];
        for (int t = 0; t < count; ++t)
          acc += (uint32_t)((base ? base + offsets[t] : taps[t])[c] *
                            weights[quads * count + t * (channels - quads) + c - quads]);
        y[c] = aot_channel_out(q, c, (int32_t)acc);
      }
    }
  }
}
#endif

AOT_INLINE AOT_UNUSED void aot_depthwise_conv_2d(const struct aot_depthwise_conv_2d *op, const int8_t *input,
                                             int8_t *scratch, int8_t *output) {
#if AOT_SIMD
  if (op->fast) {
    depthwise_simd(op, input, scratch, output);
    return;
  }
#endif
  int8_t *const ring = op->in_place && output == input ? scratch + ((op->in_c + 3) & ~3) : 0; /* depthwise_row */
  const int multiplier = op->out_c / op->in_c;
  for (int oy = 0; oy < op->out_h; ++oy) {
    const int iy0 = oy * op->stride_h - op->pad_h;
    depthwise_save_row(op, input, ring, oy);
    for (int ox = 0; ox < op->out_w; ++ox) {
      const int ix0 = ox * op->stride_w - op->pad_w;
      for (int oc = 0; oc < op->out_c; ++oc) {
        const int c = oc / multiplier;
        uint32_t acc = 0;
        for (int ky = 0; ky < op->k_h; ++ky) {
          const int iy = iy0 + ky * op->dilation_h;
          if (iy < 0 || iy >= op->in_h) continue;
          for (int kx = 0; kx < op->k_w; ++kx) {
            const int ix = ix0 + kx * op->dilation_w;
            if (ix < 0 || ix >= op->in_w) continue;
            acc += (uint32_t)((depthwise_row(op, input, ring, iy, oy)[ix * op->in_c + c] + op->input_offset) *
                              depthwise_weight(op, ky * op->k_w + kx, oc));
          }
        }
        acc += (uint32_t)op->bias[oc];
        output[(oy * op->out_w + ox) * op->out_c + oc] = output_code(
            requantize_offset((int32_t)acc, op->multipliers[oc], op->shifts[oc], op->output_offset), op->act_min,
            op->act_max);
      }
    }
  }
}

#endif
