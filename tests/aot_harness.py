"""The host build of the AOT engine that the AOT tests share: compiler, warnings and a stdin/stdout driver."""
from __future__ import annotations

import shutil
from pathlib import Path

CC = shutil.which("cc") or shutil.which("gcc")
FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes",
            "-Wcast-qual", "-Wformat=2", "-Werror"]
"""firmware/CMakeLists.txt's TINYML_WARNINGS, as errors."""

HARNESS = r"""
#include <stdio.h>
#include "engine.h"
#include "model_info.h"
int main(void) {
  static int8_t in[MODEL_INPUT_COUNT], out[MODEL_OUTPUT_COUNT];
  int v;
  if (engine_init() != 0) return 1;
  for (;;) {
    for (int i = 0; i < MODEL_INPUT_COUNT; ++i) { if (scanf("%d", &v) != 1) return 0; in[i] = (int8_t)v; }
    if (engine_invoke(in, out) != 0) return 1;
    for (int o = 0; o < MODEL_OUTPUT_COUNT; ++o) printf("%d%c", out[o], o + 1 < MODEL_OUTPUT_COUNT ? ' ' : '\n');
  }
}
"""
