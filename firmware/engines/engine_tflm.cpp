/* The TFLM engine: TensorFlow Lite for Microcontrollers' interpreter running the
 * emitted flatbuffer (model_data.cpp) with a resolver holding exactly the model's ops
 * (MODEL_TFLM_OPS) and a static arena of MODEL_ARENA_BYTES.
 *
 * Written against the TFLM tree of the Arduino library Chirale_TensorFLowLite 2.0.0
 * (MicroInterpreter(model, resolver, arena, size), TfLiteRegistration-era resolver,
 * `void DebugLog(const char*)`). It includes only "tensorflow/lite/..." headers, never
 * Arduino.h, so the same file builds for the board (PlatformIO) and the host (tflm.cmake).
 *
 * Failures never hang and never print: every failure is kept as one line for
 * engine_error(), and TFLM's own log (DebugLog, defined below) is captured into that
 * line instead of being written to the serial port that carries the protocol. The
 * builds define ARDUINO_EXCLUDE_CODE so that the library's system_setup.cpp, whose
 * DebugLog prints to Serial, compiles to nothing. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <new>

#include "engine.h"
#include "model_data.h"
#include "model_info.h"

#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/debug_log.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

#if MODEL_OP_COUNT < 1
#error "MODEL_OP_COUNT must be at least 1"
#endif

namespace {

typedef tflite::MicroMutableOpResolver<MODEL_OP_COUNT> Resolver;

/* The arena: CMSIS-NN and TFLM want 16-byte alignment. MODEL_ARENA_BYTES is sized for
 * the board (32-bit pointers). On a 64-bit host TFLM's bookkeeping structures (tensors,
 * node lists, allocator) are about twice as large: the neuron model needs at least 1288
 * bytes with this tree on x86-64, against about 750 on the Cortex-M4. Host builds
 * therefore get twice the board's arena; the board gets exactly MODEL_ARENA_BYTES. */
#if UINTPTR_MAX > 0xFFFFFFFFu
const size_t kArenaBytes = 2 * (size_t)(MODEL_ARENA_BYTES);
#else
const size_t kArenaBytes = (size_t)(MODEL_ARENA_BYTES);
#endif
alignas(16) uint8_t g_arena[kArenaBytes];

/* Storage for the resolver and the interpreter, built with placement new: no heap, no
 * static constructors, and engine_init can rebuild the interpreter after a failure. */
alignas(Resolver) unsigned char g_resolver_mem[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) unsigned char g_interpreter_mem[sizeof(tflite::MicroInterpreter)];

Resolver *g_resolver = nullptr;
tflite::MicroInterpreter *g_interpreter = nullptr;
TfLiteTensor *g_input = nullptr;
TfLiteTensor *g_output = nullptr;
int g_ready = 0;

/* The last failure, and the first TFLM log line since the current step began. */
char g_error[112] = "not initialized";
char g_log[96];

/* The bytes the allocator places at the start of the arena before anything else: with
 * less than this, TFLM's MicroAllocator::Create dereferences a null pointer. */
const size_t kArenaFloorBytes = sizeof(tflite::SingleArenaBufferAllocator) +
                                sizeof(tflite::GreedyMemoryPlanner) +
                                sizeof(tflite::MicroAllocator) + 4 * 16;

/* Appends src to dst as one line: control characters (TFLM's messages end with "\n")
 * become spaces, and runs of spaces become one. */
void append(char *dst, size_t cap, const char *src) {
  size_t n = strlen(dst);
  while (*src != '\0' && n + 1 < cap) {
    char c = *src++;
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
    if (c == ' ' && (n == 0 || dst[n - 1] == ' ')) continue;
    dst[n++] = c;
  }
  dst[n] = '\0';
}

void append_int(char *dst, size_t cap, long v) {
  char buf[24];
  char *p = buf + sizeof(buf) - 1;
  unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
  *p = '\0';
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  append(dst, cap, p);
}

void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == ' ') s[--n] = '\0';
}

/* Starts a new step: what TFLM logs from here on explains this step's failure. */
void begin_step(void) { g_log[0] = '\0'; }

/* Failure messages are built in g_error: error_begin(what), then error_str/error_int. */
void error_begin(const char *what) {
  g_error[0] = '\0';
  append(g_error, sizeof(g_error), what);
}
void error_str(const char *s) { append(g_error, sizeof(g_error), s); }
void error_int(long v) { append_int(g_error, sizeof(g_error), v); }

/* Records a failure as "<what>" or "<what>: <first TFLM log line>"; returns -1. */
int fail(const char *what) {
  error_begin(what);
  if (g_log[0] != '\0') {
    error_str(": ");
    error_str(g_log);
  }
  trim(g_error);
  return -1;
}

/* Registers the model's ops once; after a failure the next call starts afresh (and
 * fails the same way, with the same message). */
int build_resolver(void) {
  if (g_resolver != nullptr) return 0;
  Resolver *r = new (g_resolver_mem) Resolver();
  begin_step();
  /* MODEL_TFLM_OPS(OP) expands to OP(AddFullyConnected) OP(AddRelu) ...: one statement each. */
#define ENGINE_TFLM_ADD_OP(method)                                   \
  if (r->method() != kTfLiteOk) {                                    \
    return fail("op resolver: " #method " failed");                  \
  }
  MODEL_TFLM_OPS(ENGINE_TFLM_ADD_OP)
#undef ENGINE_TFLM_ADD_OP
  g_resolver = r;
  return 0;
}

/* The TFLM trees packaged for Arduino (2023-2024) read only scale[0] of FULLY_CONNECTED
 * weights: a per-channel model would run and answer wrongly. Refuse it by name. */
int check_fully_connected_per_tensor(const tflite::Model *model) {
  const auto *codes = model->operator_codes();
  const auto *subgraphs = model->subgraphs();
  if (codes == nullptr || subgraphs == nullptr) return 0;
  for (flatbuffers::uoffset_t s = 0; s < subgraphs->size(); s++) {
    const tflite::SubGraph *sg = subgraphs->Get(s);
    if (sg == nullptr || sg->operators() == nullptr || sg->tensors() == nullptr) continue;
    for (flatbuffers::uoffset_t i = 0; i < sg->operators()->size(); i++) {
      const tflite::Operator *op = sg->operators()->Get(i);
      if (op == nullptr || op->opcode_index() >= codes->size()) continue;
      if (tflite::GetBuiltinCode(codes->Get(op->opcode_index())) !=
          tflite::BuiltinOperator_FULLY_CONNECTED)
        continue;
      if (op->inputs() == nullptr || op->inputs()->size() < 2) continue;
      int32_t w = op->inputs()->Get(1);
      if (w < 0 || (flatbuffers::uoffset_t)w >= sg->tensors()->size()) continue;
      const tflite::QuantizationParameters *q = sg->tensors()->Get(w)->quantization();
      if (q != nullptr && q->scale() != nullptr && q->scale()->size() > 1) {
        error_begin("FULLY_CONNECTED weights are per-channel (");
        error_int((long)q->scale()->size());
        error_str(" scales) but this TFLM reads one: convert per-tensor");
        return -1;
      }
    }
  }
  return 0;
}

int scale_matches(float actual, float expected) {
  float d = actual - expected;
  if (d < 0) d = -d;
  float m = expected < 0 ? -expected : expected;
  return d <= m * 1e-5f;
}

int check_tensor(const TfLiteTensor *t, const char *which, size_t count, float scale, int zero_point) {
  char what[48] = "";
  append(what, sizeof(what), which);
  if (t == nullptr) {
    append(what, sizeof(what), " tensor missing");
    return fail(what);
  }
  if (t->type != kTfLiteInt8) {
    append(what, sizeof(what), " tensor is not int8");
    return fail(what);
  }
  if (t->bytes != count) {
    error_begin(what);
    error_str(" tensor has ");
    error_int((long)t->bytes);
    error_str(" values, model_info.h says ");
    error_int((long)count);
    return -1;
  }
  if (t->params.zero_point != zero_point || !scale_matches(t->params.scale, scale)) {
    append(what, sizeof(what), " quantization differs from model_info.h");
    return fail(what);
  }
  return 0;
}

int init_once(void) {
  begin_step();
  if (g_model_len < 8 || !tflite::ModelBufferHasIdentifier(g_model)) {
    return fail("g_model is not a TFLite flatbuffer");
  }
  const tflite::Model *model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    error_begin("model schema version ");
    error_int((long)model->version());
    error_str(" but this TFLM reads ");
    error_int((long)TFLITE_SCHEMA_VERSION);
    return -1;
  }
  if (model->subgraphs() == nullptr || model->subgraphs()->size() < 1) {
    return fail("model has no subgraph");
  }
  if (check_fully_connected_per_tensor(model) != 0) return -1;
  if (build_resolver() != 0) return -1;
  if (sizeof(g_arena) < kArenaFloorBytes) {
    error_begin("AllocateTensors failed: arena of ");
    error_int((long)sizeof(g_arena));
    error_str(" bytes is too small");
    return -1;
  }

  if (g_interpreter != nullptr) {
    g_interpreter->~MicroInterpreter();
    g_interpreter = nullptr;
  }
  begin_step();
  g_interpreter = new (g_interpreter_mem)
      tflite::MicroInterpreter(model, *g_resolver, g_arena, sizeof(g_arena));
  if (g_interpreter->AllocateTensors() != kTfLiteOk) return fail("AllocateTensors failed");
  if (g_interpreter->inputs_size() != 1 || g_interpreter->outputs_size() != 1) {
    return fail("model must have one input tensor and one output tensor");
  }
  g_input = g_interpreter->input(0);
  g_output = g_interpreter->output(0);
  if (check_tensor(g_input, "input", MODEL_INPUT_COUNT, MODEL_INPUT_SCALE, MODEL_INPUT_ZERO_POINT) != 0 ||
      check_tensor(g_output, "output", MODEL_OUTPUT_COUNT, MODEL_OUTPUT_SCALE, MODEL_OUTPUT_ZERO_POINT) != 0) {
    return -1;
  }
  return 0;
}

}  // namespace

/* TFLM's log sink (MicroPrintf -> DebugLog(line), DebugLog("\r\n")). Keeps the first
 * line of the current step for engine_error(); nothing goes to the serial port. */
extern "C" void DebugLog(const char *s) {
  if (s == nullptr || g_log[0] != '\0') return;
  append(g_log, sizeof(g_log), s);
  trim(g_log);
}

extern "C" int engine_init(void) {
  if (g_ready) return 0;
  g_input = nullptr;
  g_output = nullptr;
  if (init_once() != 0) return -1;
  g_ready = 1;
  g_error[0] = '\0';
  return 0;
}

extern "C" int engine_invoke(const int8_t *input, int8_t *output) {
  begin_step();
  if (input == nullptr || output == nullptr) return fail("invoke: null buffer");
  if (!g_ready && engine_init() != 0) return -1;
  if (g_interpreter == nullptr || g_input == nullptr || g_output == nullptr) return fail("not initialized");
  memcpy(g_input->data.int8, input, MODEL_INPUT_COUNT);
  begin_step();
  if (g_interpreter->Invoke() != kTfLiteOk) return fail("Invoke failed");
  memcpy(output, g_output->data.int8, MODEL_OUTPUT_COUNT);
  return 0;
}

extern "C" const char *engine_name(void) { return "tflm"; }

extern "C" size_t engine_arena_used(void) {
  return (g_ready && g_interpreter != nullptr) ? g_interpreter->arena_used_bytes() : 0;
}

extern "C" const char *engine_error(void) { return g_error; }
