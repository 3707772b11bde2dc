/* The inference engine seen by the portable core. One engine is linked per build:
 * engines/engine_aot.c (plain C over the emitted tables) or engines/engine_tflm.cpp (TFLM). */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepares the engine; 0 on success. On failure engine_error() says why. Safe to call again. */
int engine_init(void);

/* Runs one inference on MODEL_INPUT_COUNT int8 codes into MODEL_OUTPUT_COUNT codes; 0 on success. */
int engine_invoke(const int8_t *input, int8_t *output);

/* "aot" or "tflm". */
const char *engine_name(void);

/* Bytes of tensor arena in use after engine_init (0 when the engine has no arena). */
size_t engine_arena_used(void);

/* The last failure, as one short line without line ending. */
const char *engine_error(void);

#ifdef __cplusplus
}
#endif

#endif
