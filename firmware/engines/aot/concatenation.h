/* CONCATENATION: the inputs' blocks along the axis, copied in turn for each index before it (TFLM's
 * int8 kernel rescales nothing: every input has the output's quantization). */
#ifndef AOT_CONCATENATION_H
#define AOT_CONCATENATION_H

#include "aot/common.h"

#define AOT_MAX_CONCATENATED 16

struct aot_concatenation {
  int count;                                 /* inputs */
  int32_t outer;                             /* the product of the dimensions before the axis */
  int32_t block[AOT_MAX_CONCATENATED];       /* each input's values from the axis on */
};

static AOT_UNUSED void aot_concatenation(const struct aot_concatenation *op, const int8_t *const *inputs,
                                         int8_t *output) {
  for (int32_t i = 0; i < op->outer; ++i) {
    for (int k = 0; k < op->count; ++k) {
      memcpy(output, inputs[k] + i * op->block[k], (size_t)op->block[k]);
      output += op->block[k];
    }
  }
}

#endif
