# The TFLM engine for host (and other CMake) builds, from the same library tree that
# PlatformIO installs for the board. Included (through firmware.cmake's
# tinyml_add_tflm_engine) by firmware/CMakeLists.txt when TFLM_ROOT is given, and by the
# QEMU build for its TFLM images:
#
#   cmake -S firmware -B build -DTFLM_ROOT=$PWD/.pio/libdeps/nano33ble/Chirale_TensorFLowLite
#   (or TFLM_ROOT=... in the environment)
#
# TFLM_ROOT is the library's folder (the one holding src/) or its src/ folder itself:
# the tree where "tensorflow/lite/micro/micro_interpreter.h" lives under src/.
#
# Defines:
#   tflm_lib     static library: the TFLM sources of that tree, or the archive TFLM_LIBRARY
#   tflm_engine  static library: engines/engine_tflm.cpp + the emitted model_data.cpp,
#                linked to tflm_lib (link an app against tflm_engine)
#
# Optional inputs:
#   TFLM_MODEL_DIR   folder with model_info.h, model_data.h (default: firmware/model)
#   TFLM_MODEL_DATA  the emitted model_data.cpp (default: ${TFLM_MODEL_DIR}/model_data.cpp)
#   TFLM_LIBRARY     a libtflm_lib.a already compiled from this tree by the same project
#                    (pipeline/emulation/tflm_library.py builds one per target and tree):
#                    imported instead of compiling the tree again
#   TINYML_TFLM_LIBRARY_ONLY  define tflm_lib only (no model needed): how that archive is built
#
# Which kernels: in this Arduino TFLM tree (Chirale_TensorFLowLite 2.0.0) the CMSIS-NN
# kernels under micro/kernels/cmsis_nn/ *replace* the reference FULLY_CONNECTED, CONV,
# ADD, MUL, SOFTMAX, ... (there is no reference fully_connected.cpp to fall back on).
# On a hosted build they are compiled against CMSIS-NN's portable C path: without
# __ARM_FEATURE_DSP / __ARM_FEATURE_MVE it uses no intrinsics, and __GNUC_PYTHON__
# (CMSIS-NN's own host-build switch) keeps it from including the Cortex-M-only
# cmsis_compiler.h. A bare-metal ARM build (the QEMU image) gets the DSP paths, as on
# the board. Both were checked bit-exact against the tflite-micro wheel (TFLM reference
# kernels) on every int8 input code of the neuron model and on 2027 input rows of a
# 3-16-2 ReLU model.

if(NOT DEFINED TFLM_ROOT OR TFLM_ROOT STREQUAL "")
  set(TFLM_ROOT "$ENV{TFLM_ROOT}")
endif()
if(TFLM_ROOT STREQUAL "")
  message(FATAL_ERROR "tflm.cmake: set TFLM_ROOT (-DTFLM_ROOT=<dir> or the environment) to the TFLM library tree")
endif()
get_filename_component(TFLM_ROOT "${TFLM_ROOT}" ABSOLUTE)

if(EXISTS "${TFLM_ROOT}/src/tensorflow/lite/micro/micro_interpreter.h")
  set(_tflm_src "${TFLM_ROOT}/src")
elseif(EXISTS "${TFLM_ROOT}/tensorflow/lite/micro/micro_interpreter.h")
  set(_tflm_src "${TFLM_ROOT}")
else()
  message(FATAL_ERROR "tflm.cmake: no tensorflow/lite/micro/micro_interpreter.h under ${TFLM_ROOT} or ${TFLM_ROOT}/src")
endif()

include("${CMAKE_CURRENT_LIST_DIR}/firmware.cmake") # TINYML_CXX_WARNINGS; once per directory
set(_fw "${CMAKE_CURRENT_LIST_DIR}")
enable_language(C CXX)

# The packaged tree is configured by the ARDUINO macro, not by upstream's
# TF_LITE_STATIC_MEMORY / CMSIS_NN switches: with ARDUINO, kernel headers declare the
# CMSIS-NN registrations (Register_FULLY_CONNECTED_INT8, ...) instead of inline
# fallbacks, and the heap-using parts of kernel_util / flatbuffer_conversions are
# compiled out. So the tree and every file including its headers (the engine) are
# compiled with ARDUINO defined, as on the board; it is kept PRIVATE so that code
# linking tflm_engine (the portable core) does not see it.
# ARDUINO_EXCLUDE_CODE: as on the board, the library's Serial-printing DebugLog
# (system_setup.cpp) is compiled out; engine_tflm.cpp provides DebugLog.
# Not TF_LITE_STATIC_MEMORY: this tree does not compile with it (kernel_util.cpp uses
# TfLiteIntArrayCreate and dims_signature) and the board build does not define it.
set(_tflm_defs ARDUINO=1 ARDUINO_EXCLUDE_CODE)
# The tree's own path out of __FILE__, in the library and in the engine that includes its
# macros: the image does not depend on where the tree is installed.
set(_tflm_path_map "-ffile-prefix-map=${_tflm_src}/=")

if(DEFINED TFLM_LIBRARY AND NOT TFLM_LIBRARY STREQUAL "")
# --- the library, compiled once already ------------------------------------------------
if(NOT EXISTS "${TFLM_LIBRARY}")
  message(FATAL_ERROR "tflm.cmake: TFLM_LIBRARY ${TFLM_LIBRARY} does not exist")
endif()
add_library(tflm_lib STATIC IMPORTED)
set_target_properties(tflm_lib PROPERTIES IMPORTED_LOCATION "${TFLM_LIBRARY}"
                      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_tflm_src}"
                      INTERFACE_INCLUDE_DIRECTORIES "${_tflm_src}")
else()
# --- the library tree ---------------------------------------------------------------
file(GLOB_RECURSE _tflm_sources CONFIGURE_DEPENDS
  "${_tflm_src}/tensorflow/lite/*.cpp"
  "${_tflm_src}/tensorflow/lite/*.cc"
  "${_tflm_src}/tensorflow/lite/*.c"
  "${_tflm_src}/third_party/cmsis_nn/Source/*.c")
# Not needed to run a model, or not buildable off the board:
#   experimental/microfrontend  audio front end (needs kissfft)
#   system_setup.cpp            the Arduino serial glue (includes Arduino.h; see DebugLog
#                               in engine_tflm.cpp); empty anyway under ARDUINO_EXCLUDE_CODE
#   test helpers and tests, the kernel test runner, the recording/mock tools
list(FILTER _tflm_sources EXCLUDE REGEX "/tensorflow/lite/experimental/")
list(FILTER _tflm_sources EXCLUDE REGEX "/tensorflow/lite/micro/system_setup\\.cpp$")
list(FILTER _tflm_sources EXCLUDE REGEX "_test\\.(cc|cpp)$")
list(FILTER _tflm_sources EXCLUDE REGEX "/tensorflow/lite/micro/(test_helpers|test_helper_custom_ops|mock_micro_graph|fake_micro_context|recording_micro_allocator)\\.cpp$")
list(FILTER _tflm_sources EXCLUDE REGEX "/tensorflow/lite/micro/kernels/kernel_runner\\.cpp$")
if(NOT _tflm_sources)
  message(FATAL_ERROR "tflm.cmake: no sources found under ${_tflm_src}")
endif()

add_library(tflm_lib STATIC ${_tflm_sources})
target_include_directories(tflm_lib SYSTEM PUBLIC "${_tflm_src}")
target_compile_definitions(tflm_lib PRIVATE ${_tflm_defs})
set_target_properties(tflm_lib PROPERTIES
  CXX_STANDARD 14 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS ON   # the board compiles with -std=gnu++14
  C_STANDARD 11 C_EXTENSIONS ON)

set(_tflm_is_arm FALSE) # bare-metal Cortex-M, where CMSIS's own headers apply
if(CMAKE_CXX_COMPILER MATCHES "arm-none-eabi" OR
   (CMAKE_SYSTEM_NAME STREQUAL "Generic" AND CMAKE_SYSTEM_PROCESSOR MATCHES "^(arm|ARM|cortex)"))
  set(_tflm_is_arm TRUE)
endif()
if(NOT _tflm_is_arm)
  # CMSIS-NN's host switch: plain C, no CMSIS core headers (see the top of this file).
  # (That path leaves __RESTRICT and __CLZ, normally from cmsis_gcc.h, to the build: its int8
  # softmax calls __CLZ, and without it a model with SOFTMAX does not link. Same result as
  # cmsis_gcc.h's, 32 for 0.)
  # (A function-like macro: target_compile_definitions drops those.)
  target_compile_definitions(tflm_lib PRIVATE __GNUC_PYTHON__ __RESTRICT=__restrict)
  target_compile_options(tflm_lib PRIVATE "-D__CLZ(x)=((x) == 0u ? 32 : __builtin_clz(x))")
endif()
# micro_time.cpp reads the clock through the Arduino glue (peripherals/) unless told to
# use <ctime>; only the profiler calls it, but the library should link anywhere.
target_compile_definitions(tflm_lib PRIVATE TF_LITE_USE_CTIME)
target_compile_options(tflm_lib PRIVATE ${_tflm_path_map})
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  # A third-party tree: keep its warnings out of this project's build log.
  target_compile_options(tflm_lib PRIVATE -w $<$<COMPILE_LANGUAGE:CXX>:-fno-rtti -fno-exceptions>)
endif()
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Generic")
  # Hosted builds: also linkable into a shared library (e.g. for ctypes). Bare metal
  # (the QEMU image) links absolute.
  set_target_properties(tflm_lib PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
endif()

if(TINYML_TFLM_LIBRARY_ONLY)
  unset(_tflm_sources)
  unset(_tflm_is_arm)
  return()
endif()

# --- the engine -----------------------------------------------------------------------
if(NOT DEFINED TFLM_MODEL_DIR)
  set(TFLM_MODEL_DIR "${_fw}/model")
endif()
if(NOT DEFINED TFLM_MODEL_DATA)
  set(TFLM_MODEL_DATA "${TFLM_MODEL_DIR}/model_data.cpp")
endif()
if(NOT EXISTS "${TFLM_MODEL_DATA}")
  message(FATAL_ERROR "tflm.cmake: ${TFLM_MODEL_DATA} is missing: emit the model first (python -m pipeline.build)")
endif()
add_library(tflm_engine STATIC "${_fw}/engines/engine_tflm.cpp" "${TFLM_MODEL_DATA}")
target_include_directories(tflm_engine PUBLIC "${_fw}/core" "${TFLM_MODEL_DIR}")
target_link_libraries(tflm_engine PUBLIC tflm_lib)
target_compile_definitions(tflm_engine PRIVATE ${_tflm_defs})
target_compile_options(tflm_engine PRIVATE ${_tflm_path_map})
set_target_properties(tflm_engine PROPERTIES
  CXX_STANDARD 14 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS ON)
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Generic")
  set_target_properties(tflm_engine PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(tflm_engine PRIVATE ${TINYML_CXX_WARNINGS}
                         $<$<COMPILE_LANGUAGE:CXX>:-fno-rtti -fno-exceptions>)
endif()

unset(_tflm_sources)
unset(_tflm_defs)
unset(_tflm_path_map)
unset(_tflm_is_arm)
