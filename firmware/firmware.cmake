# What the native build (firmware/CMakeLists.txt) and the QEMU build
# (platform/qemu/CMakeLists.txt) share, written once: the warning flags, the portable
# core's sources, the AOT engine's sources, and how the TFLM engine (tflm.cmake) is
# pulled in. The board build (platformio.ini) picks the same files with build_src_filter
# (+<core/*.c>: a new core source needs no line there).
#
# Inputs: TINYML_MODEL_DIR (the emitted model sources; default firmware/model), WERROR.
# Defines:
#   TINYML_FW             this folder (firmware/)
#   TINYML_WARNINGS       warnings for our own C sources (-Werror too with WERROR)
#   TINYML_PATH_MAP       maps this repository's path out of __FILE__ (see below)
#   TINYML_CXX_WARNINGS   warnings for the TFLM engine's C++ (never -Werror: it includes
#                         a third-party tree)
#   TINYML_CORE_SOURCES   the portable core: protocol v1 on top of engine.h
#   TINYML_AOT_SOURCES    the plain-C AOT engine and the emitted model it runs
#   tinyml_add_libraries(<STATIC|OBJECT>)
#                         targets tinyml_headers (core/ and the model's folder),
#                         tinyml_core and engine_aot
#   tinyml_add_tflm_engine()
#                         target tflm_engine (and tflm_lib) from TFLM_ROOT, see tflm.cmake
include_guard(DIRECTORY)

set(TINYML_FW "${CMAKE_CURRENT_LIST_DIR}")
if(NOT TINYML_MODEL_DIR)
  set(TINYML_MODEL_DIR "${TINYML_FW}/model")
endif()

set(TINYML_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
                    -Wmissing-prototypes -Wcast-qual -Wformat=2)
if(WERROR)
  list(APPEND TINYML_WARNINGS -Werror)
endif()
set(TINYML_CXX_WARNINGS -Wall -Wextra)

# __FILE__ (TFLM's error macros, assert) names a file relative to its tree, not to where a
# clone or the library happens to sit: the same sources give the same image, byte for byte,
# on every machine (the documented footprints are measured so).
get_filename_component(_tinyml_repo "${TINYML_FW}" DIRECTORY)
set(TINYML_PATH_MAP "-ffile-prefix-map=${_tinyml_repo}/=")
add_compile_options(${TINYML_PATH_MAP})

set(TINYML_CORE_SOURCES "${TINYML_FW}/core/protocol.c" "${TINYML_FW}/core/decimal.c"
                        "${TINYML_FW}/core/app.c")
set(TINYML_AOT_SOURCES "${TINYML_FW}/engines/engine_aot.c")

function(tinyml_add_libraries kind)
  add_library(tinyml_headers INTERFACE)
  # engines/: the AOT kernels (aot/<op>.h) that the emitted model_aot.h includes
  target_include_directories(tinyml_headers INTERFACE "${TINYML_FW}/core" "${TINYML_MODEL_DIR}" "${TINYML_FW}/engines")

  add_library(tinyml_core ${kind} ${TINYML_CORE_SOURCES})
  target_link_libraries(tinyml_core PUBLIC tinyml_headers)
  target_compile_options(tinyml_core PRIVATE ${TINYML_WARNINGS})

  add_library(engine_aot ${kind} ${TINYML_AOT_SOURCES})
  target_link_libraries(engine_aot PUBLIC tinyml_headers)
  # The engine compiles the emitted tables (model_aot.h) under the same warnings.
  target_compile_options(engine_aot PRIVATE ${TINYML_WARNINGS})
endfunction()

# A macro, so that tflm.cmake's variables and enable_language land in the caller's scope.
macro(tinyml_add_tflm_engine)
  enable_language(CXX)
  set(TFLM_MODEL_DIR "${TINYML_MODEL_DIR}")
  include("${TINYML_FW}/tflm.cmake")
endmacro()
