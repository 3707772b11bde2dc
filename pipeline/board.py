"""The Arduino Nano 33 BLE's budget, in one place: what of its flash and RAM a model may use beside
the mbed core, so that a model that cannot fit is said at build time, not by the linker or by a
board that hangs after flashing.

Figures and their sources:
- Sketch flash 983,040 B: `nano33ble.upload.maximum_size` in the mbed core's boards.txt (the
  nRF52840's 1 MB less the bootloader's 64 KB below the sketch). RAM 262,144 B:
  `nano33ble.upload.maximum_data_size`.
- Set aside of the flash: 128 KB for the mbed core (mbed OS, its RTOS, USB serial) and this
  firmware's protocol core; of the RAM: 64 KB, of which the core's main-thread stack is 32 KB
  (MBED_CONF_RTOS_MAIN_THREAD_STACK_SIZE in variants/ARDUINO_NANO33BLE/mbed_config.h). Both are
  margins: the core's libmbed.a, whose link map would say exactly, cannot be linked here.
- Engine code: the board's TFLM library with the kernels a model registers took up to 125 KB in
  the QEMU images measured (`python -m pipeline.footprint`, a DS-CNN keyword spotter, its
  flatbuffer included), so 128 KB is counted for it; the AOT engine's kernels, 16 KB.
"""
from __future__ import annotations

SKETCH_FLASH_BYTES = 983_040
RAM_BYTES = 262_144
FLASH_RESERVED_BYTES = 128 * 1024
RAM_RESERVED_BYTES = 64 * 1024
ENGINE_CODE_BYTES = {"tflm": 128 * 1024, "aot": 16 * 1024}
APP_CORE_BYTES = 2048
"""The protocol core's own state beside the model's input and output (core/app.h's app_t: a 128 B
line, a 128 B answer piece, 64 echo entries of 12 B, the parser's state), by a margin. It does not
grow with the model: answers are formatted as they are sent."""

MODEL_FLASH_BYTES = SKETCH_FLASH_BYTES - FLASH_RESERVED_BYTES
MODEL_RAM_BYTES = RAM_BYTES - RAM_RESERVED_BYTES
FLASH_TEXT = (f"the {MODEL_FLASH_BYTES:,} B of flash the Nano 33 BLE leaves a model ({SKETCH_FLASH_BYTES:,} B of "
              f"sketch flash less {FLASH_RESERVED_BYTES // 1024} KB for the mbed core and USB serial)")
RAM_TEXT = (f"the {MODEL_RAM_BYTES} B the Nano 33 BLE leaves a sketch (256 KB less {RAM_RESERVED_BYTES // 1024} KB "
            "for the mbed core, its stacks and USB serial)")


def flash_refusal(model_bytes: int, engine: str) -> str | None:
    """Why the model's data and its engine's code cannot fit the board's flash, by how much; None
    when they fit. The TFLM engine keeps the whole flatbuffer in flash; the AOT engine's tables hold
    the same weights without the flatbuffer's framing, so the flatbuffer bounds them."""
    code = ENGINE_CODE_BYTES[engine]
    need = model_bytes + code
    if need <= MODEL_FLASH_BYTES:
        return None
    data = "flatbuffer" if engine == "tflm" else "weights and tables (at most the flatbuffer's size)"
    return (f"the model does not fit the board's flash: its {data} of {model_bytes:,} B and about {code // 1024} KB "
            f"of {engine.upper()} code need {need:,} B, {need - MODEL_FLASH_BYTES:,} B more than {FLASH_TEXT}")


def tflm_ram_warning(arena: int, inputs: int, outputs: int) -> str | None:
    """A warning when TFLM's arena (as the host's runtime measured it: the board's library may need a
    little more or less) with the firmware's input, output and core state passes the board's RAM."""
    need = arena + inputs + outputs + APP_CORE_BYTES
    if arena <= 0 or need <= MODEL_RAM_BYTES:
        return None
    return (f"TFLM's arena of {arena:,} B with the model's input, output and the protocol core needs {need:,} B of RAM, "
            f"{need - MODEL_RAM_BYTES:,} B more than {RAM_TEXT}: the board's TFLM will fail to allocate it")
