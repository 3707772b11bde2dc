/* LOGISTIC and TANH: one int8 in, one int8 out, value by value, so the op is its table of 256
 * answers (pipeline/int8/ops/lookup.py computes them as TFLM's kernels do). It may run in place. */
#ifndef AOT_LOOKUP_H
#define AOT_LOOKUP_H

#include "aot/common.h"

struct aot_lookup {
  int count;             /* values */
  const int8_t *table;   /* the answer to code c at [c + 128] */
};

AOT_INLINE void aot_lookup(const struct aot_lookup *op, const int8_t *input, int8_t *output) {
  for (int i = 0; i < op->count; ++i) output[i] = op->table[input[i] + 128];
}

#endif
