"""The host build of the AOT engine that the AOT tests share: compiler, warnings and a stdin/stdout driver."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.emit import aot
from pipeline.int8.ops import fully_connected, reshape
from pipeline.int8.reference import Step
from pipeline.int8.tflite_model import Operator, Tensor

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


def chain_header(layers: Sequence[Any]) -> str:
    """model_aot.h for layers the tests drew themselves (FULLY_CONNECTED, RESHAPE), in a chain from the
    model's input (tensor 0) to its output: the emitter and planner the build uses, over tensors made
    here to fit them."""
    def width(layer: Any, side: int) -> int:
        if isinstance(layer, reshape.Reshape):
            return layer.units
        return int(layer.weights.shape[1 - side])

    sizes = [width(layers[0], 0)] + [width(layer, 1) for layer in layers]
    tensors = [Tensor(k, f"t{k}", (1, n), "INT8", np.array([1.0]), np.array([0]), None) for k, n in enumerate(sizes)]
    steps = [Step(Operator(k, "RESHAPE" if isinstance(layer, reshape.Reshape) else fully_connected.NAMES[0], (k,),
                           (k + 1,), "NONE"), layer, (k,), k + 1) for k, layer in enumerate(layers)]
    return aot.emit(steps, tensors, 0, len(layers))


def write_model_folder(folder: Path, header: str, ops: Sequence[str], inputs: int, outputs: int,
                       input_zero_point: int, output_zero_point: int, per_channel: bool, name: str) -> Path:
    """The emitted files a QEMU image builds from, for layers the build never saw: the chain's
    model_aot.h, and a model_info.h and model.json describing it (scales 0.5 in, 0.25 out)."""
    import hashlib
    from pipeline.emit import sources
    from pipeline.int8.description import ModelDescription
    folder.mkdir(parents=True, exist_ok=True)
    description = ModelDescription(
        inputs=inputs, outputs=outputs, input_scale=0.5, input_zero_point=input_zero_point, output_scale=0.25,
        output_zero_point=output_zero_point, input_range=(-64.0, 63.0), name=name,
        sha256=hashlib.sha256(header.encode()).hexdigest(), ops=tuple(ops), per_channel=per_channel, arena=0,
        arena_measured=0, tolerance_lsb=None)
    files = {"model_aot.h": header, "model_info.h": sources.model_info_h(description),
             "model.json": sources.model_json(description, {"codes": [], "float": []})}
    for file, text in files.items():
        path = folder / file
        if not path.is_file() or path.read_text() != text:  # unchanged files keep the build incremental
            path.write_text(text)
    return folder
