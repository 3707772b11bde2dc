/* ADD: TFLM's reference int8 Add over the emitter's multipliers (pipeline/int8/ops/add.py): each
 * operand offset, shifted left 20 bits and rescaled to twice the larger input scale, the two summed
 * in int32, rescaled to the output, offset and clamped. Operands broadcast (aot/common.h's walk). */
#ifndef AOT_ADD_H
#define AOT_ADD_H

#include "aot/common.h"

struct aot_add {
  struct aot_broadcast shape;
  int32_t offset_a, offset_b;        /* -input zero points */
  int32_t multiplier_a, multiplier_b;
  int shift_a, shift_b;              /* <= 0 */
  int32_t output_multiplier;
  int output_shift;
  int32_t output_offset;
  int32_t act_min, act_max;
};

/* One output code of the sum of codes a and b (also a convolution's epilogue: aot/conv_2d.h). */
AOT_INLINE int8_t add_code(const struct aot_add *op, int32_t a, int32_t b) {
  const int32_t scaled_a = multiply_by_quantized_multiplier((a + op->offset_a) * (1 << 20), op->multiplier_a,
                                                            op->shift_a);
  const int32_t scaled_b = multiply_by_quantized_multiplier((b + op->offset_b) * (1 << 20), op->multiplier_b,
                                                            op->shift_b);
  const int32_t sum = (int32_t)((uint32_t)scaled_a + (uint32_t)scaled_b);
  const int32_t raw = multiply_by_quantized_multiplier(sum, op->output_multiplier, op->output_shift);
  return output_code((int32_t)((uint32_t)raw + (uint32_t)op->output_offset), op->act_min, op->act_max);
}

static AOT_UNUSED void aot_add(const struct aot_add *op, const int8_t *a, const int8_t *b, int8_t *output) {
  struct aot_walk at = {{0}, 0, 0};
  const int32_t count = broadcast_count(&op->shape);
  for (int32_t o = 0; o < count; ++o) {
    output[o] = add_code(op, a[at.a], b[at.b]);
    broadcast_next(&op->shape, &at);
  }
}

#endif
