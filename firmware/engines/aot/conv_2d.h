/* CONV_2D: TFLM's reference ConvPerChannel for int8 over the tables the emitter writes
 * (pipeline/int8/ops/conv_2d.py): per output position and channel, the window's taps on the input
 * (those on the padding are skipped: they would add 0 once offset), each (x + input_offset) * w,
 * summed in int32 with the bias, requantized by the channel's multiplier and shift, offset and
 * clamped to the fused activation. Grouped filters read their group's input channels. The portable
 * path: plain loops, correct for every shape the reference takes. */
#ifndef AOT_CONV_2D_H
#define AOT_CONV_2D_H

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
};

static AOT_UNUSED void aot_conv_2d(const struct aot_conv_2d *op, const int8_t *input, int8_t *output) {
  const int depth = op->in_c / op->groups, per_group = op->out_c / op->groups;
  for (int oy = 0; oy < op->out_h; ++oy) {
    const int iy0 = oy * op->stride_h - op->pad_h;
    for (int ox = 0; ox < op->out_w; ++ox) {
      const int ix0 = ox * op->stride_w - op->pad_w;
      for (int oc = 0; oc < op->out_c; ++oc) {
        const int first = (oc / per_group) * depth;
        uint32_t acc = 0; /* TFLM's int32 sum, wrapping */
        for (int ky = 0; ky < op->k_h; ++ky) {
          const int iy = iy0 + ky * op->dilation_h;
          if (iy < 0 || iy >= op->in_h) continue;
          for (int kx = 0; kx < op->k_w; ++kx) {
            const int ix = ix0 + kx * op->dilation_w;
            if (ix < 0 || ix >= op->in_w) continue;
            const int8_t *x = input + (iy * op->in_w + ix) * op->in_c + first;
            const int8_t *w = op->weights + ((oc * op->k_h + ky) * op->k_w + kx) * depth;
            for (int c = 0; c < depth; ++c) acc += (uint32_t)((x[c] + op->input_offset) * w[c]);
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
