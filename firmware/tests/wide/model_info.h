/* The core test's wide model (core_test_wide): the fixed constants of tests/model_info.h
 * with 1,024 inputs and 40 outputs, so that queries are many times longer than the 128
 * bytes a stored line holds, and `q`, value and `id` answers are longer than 128 bytes
 * too (their echoes must be recognised without storing them). The test's engine answers
 * the last 40 inputs, the last first. */
#ifndef WIDE_MODEL_INFO_H
#define WIDE_MODEL_INFO_H

#define MODEL_NAME "core-test-wide"
#define MODEL_SHA256 "c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789"
#define MODEL_ID "c0ffee012345"
#define MODEL_INPUT_COUNT 1024
#define MODEL_OUTPUT_COUNT 40
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
