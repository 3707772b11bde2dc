/* MUL: TFLM's reference int8 Mul (pipeline/int8/ops/mul.py): the product of the offset codes,
 * rescaled by input scale x input scale / output scale, offset and clamped; operands broadcast. */
#ifndef AOT_MUL_H
#define AOT_MUL_H

#include "aot/common.h"

struct aot_mul {
  struct aot_broadcast shape;
  int32_t offset_a, offset_b;
  int32_t multiplier;
  int shift;
  int32_t output_offset;
  int32_t act_min, act_max;
};

static AOT_UNUSED void aot_mul(const struct aot_mul *op, const int8_t *a, const int8_t *b, int8_t *output) {
  struct aot_walk at = {{0}, 0, 0};
  const int32_t count = broadcast_count(&op->shape);
  for (int32_t o = 0; o < count; ++o) {
    const int32_t product = (a[at.a] + op->offset_a) * (b[at.b] + op->offset_b);
    const int32_t raw = multiply_by_quantized_multiplier(product, op->multiplier, op->shift);
    output[o] = output_code((int32_t)((uint32_t)raw + (uint32_t)op->output_offset), op->act_min, op->act_max);
    broadcast_next(&op->shape, &at);
  }
}

#endif
