/* What AVERAGE_POOL_2D and MAX_POOL_2D share: the window geometry (TFLM's PoolParams), and each
 * window clamped to the rows and columns of the input it covers. */
#ifndef AOT_POOL_2D_H
#define AOT_POOL_2D_H

#include "aot/common.h"

struct aot_pool_2d {
  int in_h, in_w, channels;
  int out_h, out_w;
  int filter_h, filter_w;
  int stride_h, stride_w;
  int pad_h, pad_w;
  int32_t act_min, act_max;
};

/* The input rows [start, end) a window starting at `origin` covers (origin may be in the padding). */
AOT_INLINE AOT_UNUSED void pool_span(int origin, int filter, int size, int *start, int *end) {
  *start = origin < 0 ? 0 : origin;
  *end = origin + filter < size ? origin + filter : size;
}

#endif
