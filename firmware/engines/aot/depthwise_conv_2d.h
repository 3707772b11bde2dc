/* DEPTHWISE_CONV_2D: TFLM's reference DepthwiseConvPerChannel for int8 over the emitter's tables
 * (pipeline/int8/ops/depthwise_conv_2d.py): output channel c * multiplier + m is input channel c's
 * window times its own filter, taps on the padding skipped, the bias added to the int32 sum,
 * requantized per channel. The portable path. */
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
  const int8_t *weights;        /* [k_h][k_w][out_c] */
  const int32_t *bias;          /* [out_c] */
  const int32_t *multipliers;   /* [out_c] */
  const int8_t *shifts;         /* [out_c] */
  int32_t input_offset;
  int32_t output_offset;
  int32_t act_min, act_max;
};

static AOT_UNUSED void aot_depthwise_conv_2d(const struct aot_depthwise_conv_2d *op, const int8_t *input,
                                             int8_t *output) {
  const int multiplier = op->out_c / op->in_c;
  for (int oy = 0; oy < op->out_h; ++oy) {
    const int iy0 = oy * op->stride_h - op->pad_h;
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
            acc += (uint32_t)((input[(iy * op->in_w + ix) * op->in_c + c] + op->input_offset) *
                              op->weights[(ky * op->k_w + kx) * op->out_c + oc]);
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
