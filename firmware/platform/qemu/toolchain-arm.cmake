# CMake toolchain file: arm-none-eabi-gcc (Debian's gcc-arm-none-eabi 12 with
# libnewlib-arm-none-eabi) for the Arduino Nano 33 BLE's CPU, a Cortex-M4 with
# single-precision FPU, as PlatformIO builds the board. Used for the QEMU image
# (firmware/platform/qemu/CMakeLists.txt):
#
#   cmake -S firmware/platform/qemu -B build/qemu \
#         -DCMAKE_TOOLCHAIN_FILE=firmware/platform/qemu/toolchain-arm.cmake
#
# newlib-nano (--specs=nano.specs) is the C library; no system calls are used, and
# --specs=nosys.specs turns any that sneak in into link-time stubs instead of errors.
# The platform layer brings its own start-up code (-nostartfiles).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(TINYML_ARM_PREFIX "arm-none-eabi-" CACHE STRING "Cross tool prefix")
find_program(TINYML_ARM_GCC ${TINYML_ARM_PREFIX}gcc)
if(NOT TINYML_ARM_GCC)
  message(FATAL_ERROR "${TINYML_ARM_PREFIX}gcc not found: install the Debian packages "
                      "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
endif()
get_filename_component(_arm_bin "${TINYML_ARM_GCC}" DIRECTORY)

set(CMAKE_C_COMPILER "${TINYML_ARM_GCC}")
set(CMAKE_CXX_COMPILER "${_arm_bin}/${TINYML_ARM_PREFIX}g++")
set(CMAKE_ASM_COMPILER "${TINYML_ARM_GCC}")
set(CMAKE_AR "${_arm_bin}/${TINYML_ARM_PREFIX}ar" CACHE FILEPATH "")
set(CMAKE_RANLIB "${_arm_bin}/${TINYML_ARM_PREFIX}ranlib" CACHE FILEPATH "")
set(CMAKE_OBJCOPY "${_arm_bin}/${TINYML_ARM_PREFIX}objcopy" CACHE FILEPATH "")
set(CMAKE_SIZE "${_arm_bin}/${TINYML_ARM_PREFIX}size" CACHE FILEPATH "")
# The compiler checks cannot link a program without a link script: build a library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# The Nano 33 BLE's CPU (nRF52840: Cortex-M4F). CMakeLists.txt adds them again with
# add_compile_options/add_link_options, so a -DCMAKE_C_FLAGS=... given by hand adds to
# them instead of silently replacing them (a different multilib would link).
set(TINYML_CPU_FLAGS -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard)
string(REPLACE ";" " " _cpu_flags "${TINYML_CPU_FLAGS}")
set(CMAKE_C_FLAGS_INIT "${_cpu_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_cpu_flags}")
set(CMAKE_ASM_FLAGS_INIT "${_cpu_flags}")
set(TINYML_LINK_FLAGS --specs=nano.specs --specs=nosys.specs -nostartfiles -Wl,--gc-sections)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
