/* MEAN over some axes: the tflite-micro runtime's QuantizedMeanOrSum for int8
 * (pipeline/int8/ops/mean.py): the int32 sum of the codes less the input zero point per value,
 * times one multiplier (input scale / output scale with 1 / count folded in), offset and saturated.
 * The input's dimensions are split in two walks: the kept ones (one output value each) and the
 * reduced ones (summed). */
#ifndef AOT_MEAN_H
#define AOT_MEAN_H

#include "aot/common.h"

struct aot_mean {
  int kept_rank, reduced_rank;
  int32_t kept_shape[AOT_MAX_RANK], kept_step[AOT_MAX_RANK];        /* in input values */
  int32_t reduced_shape[AOT_MAX_RANK], reduced_step[AOT_MAX_RANK];
  int32_t count;                 /* values summed per output */
  int32_t input_zero_point;
  int32_t multiplier;
  int shift;
  int32_t output_zero_point;
};

/* The next index of a walk over shape (last dimension fastest), moving *at by steps; 0 at the end. */
AOT_INLINE int mean_next(int rank, const int32_t *shape, const int32_t *step, int32_t *index, int32_t *at) {
  for (int d = rank - 1; d >= 0; --d) {
    *at += step[d];
    if (++index[d] < shape[d]) return 1;
    *at -= step[d] * shape[d];
    index[d] = 0;
  }
  return 0;
}

static AOT_UNUSED void aot_mean(const struct aot_mean *op, const int8_t *input, int8_t *output) {
  int32_t kept[AOT_MAX_RANK] = {0}, base = 0, o = 0;
  do {
    int32_t reduced[AOT_MAX_RANK] = {0}, at = base;
    uint32_t sum = 0;
    do {
      sum += (uint32_t)input[at];
    } while (mean_next(op->reduced_rank, op->reduced_shape, op->reduced_step, reduced, &at));
    const int32_t shifted = (int32_t)(sum - (uint32_t)(op->input_zero_point * op->count));
    output[o++] = output_code(multiply_by_quantized_multiplier(shifted, op->multiplier, op->shift) +
                              op->output_zero_point, -128, 127);
  } while (mean_next(op->kept_rank, op->kept_shape, op->kept_step, kept, &base));
}

#endif
