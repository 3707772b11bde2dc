/* RESHAPE, EXPAND_DIMS and SQUEEZE keep the bytes and their order: they have no kernel, the memory
 * plan gives their output their input's bytes. Only a model that is nothing else, whose output is
 * then its input, copies it. */
#ifndef AOT_RESHAPE_H
#define AOT_RESHAPE_H

#include "aot/common.h"

struct aot_reshape {
  int count;
};

AOT_INLINE void aot_reshape(const struct aot_reshape *op, const int8_t *input, int8_t *output) {
  memcpy(output, input, (size_t)op->count);
}

#endif
