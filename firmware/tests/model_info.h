/* The core test's own model header (firmware/tests/core_test.c), in place of the emitted
 * firmware/model/model_info.h: fixed constants, so the test's expected answers never
 * change when another model is emitted. Two inputs and two outputs, so that counts and
 * field numbers are exercised. It defines what the emitted header defines for the core. */
#ifndef MODEL_INFO_H
#define MODEL_INFO_H

#define MODEL_NAME "core-test"
#define MODEL_SHA256 "c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789"
#define MODEL_ID "c0ffee012345"
#define MODEL_INPUT_COUNT 2
#define MODEL_OUTPUT_COUNT 2
#define MODEL_INPUT_SCALE 0.5f
#define MODEL_INPUT_ZERO_POINT -10
#define MODEL_OUTPUT_SCALE 0.1f
#define MODEL_OUTPUT_ZERO_POINT 3
#define MODEL_INPUT_MIN -2.0f
#define MODEL_INPUT_MAX 30.0f
#define MODEL_ARENA_MEASURED_BYTES 0
#define MODEL_ARENA_BYTES 0
#define MODEL_OP_COUNT 0
#define MODEL_TFLM_OPS(OP)

#endif
