/* PAD: the output filled with the pad value, the input's rows (its last dimension) copied in at
 * their padded places. */
#ifndef AOT_PAD_H
#define AOT_PAD_H

#include "aot/common.h"

struct aot_pad {
  int rank;
  int32_t in_shape[AOT_MAX_RANK];
  int32_t out_step[AOT_MAX_RANK];   /* the output's strides, in values */
  int32_t start;                    /* where the input's first value lands */
  int32_t out_count;
  int8_t value;
};

static AOT_UNUSED void aot_pad(const struct aot_pad *op, const int8_t *input, int8_t *output) {
  const int32_t row = op->in_shape[op->rank - 1];
  int32_t index[AOT_MAX_RANK] = {0}, rows = 1;
  memset(output, op->value, (size_t)op->out_count);
  for (int d = 0; d < op->rank - 1; ++d) rows *= op->in_shape[d];
  for (int32_t r = 0; r < rows; ++r) {
    int32_t at = op->start;
    for (int d = 0; d < op->rank - 1; ++d) at += index[d] * op->out_step[d];
    memcpy(output + at, input + r * row, (size_t)row);
    for (int d = op->rank - 2; d >= 0; --d) { /* the next row of the input */
      if (++index[d] < op->in_shape[d]) break;
      index[d] = 0;
    }
  }
}

#endif
