/* MAX_POOL_2D: TFLM's reference MaxPool for int8: the largest of the window's taps on the input,
 * clamped to the fused activation. */
#ifndef AOT_MAX_POOL_2D_H
#define AOT_MAX_POOL_2D_H

#include "aot/pool_2d.h"

static AOT_UNUSED void aot_max_pool_2d(const struct aot_pool_2d *op, const int8_t *input, int8_t *output) {
  for (int oy = 0; oy < op->out_h; ++oy) {
    int y_start, y_end;
    pool_span(oy * op->stride_h - op->pad_h, op->filter_h, op->in_h, &y_start, &y_end);
    for (int ox = 0; ox < op->out_w; ++ox) {
      int x_start, x_end;
      pool_span(ox * op->stride_w - op->pad_w, op->filter_w, op->in_w, &x_start, &x_end);
      for (int c = 0; c < op->channels; ++c) {
        int32_t best = -128;
        for (int y = y_start; y < y_end; ++y) {
          for (int x = x_start; x < x_end; ++x) {
            const int32_t v = input[(y * op->in_w + x) * op->channels + c];
            best = v > best ? v : best;
          }
        }
        *output++ = output_code(best, op->act_min, op->act_max);
      }
    }
  }
}

#endif
