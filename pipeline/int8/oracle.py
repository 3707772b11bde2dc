"""The int8 answers a device must give: TFLM's own runtime where its wheel exists."""
from __future__ import annotations

import re

import numpy as np

from pipeline.int8 import reference
from pipeline.int8 import tflite_model
from pipeline.capture import fd_output

try:
    from tflite_micro import runtime as _tflm
except ImportError:  # the wheel exists for Linux x86_64 only
    _tflm = None


def tflm_available() -> bool:
    return _tflm is not None


def tflm_outputs(model: bytes, codes: np.ndarray) -> np.ndarray:
    """Runs TFLM's interpreter (reference kernels) one row at a time, as the device does; a row
    of codes fills a multi-dimensional input tensor in row-major order."""
    if _tflm is None:
        raise RuntimeError("the tflite-micro wheel is not installed (it exists for Linux x86_64 only)")
    parsed = tflite_model.read(bytes(model))
    shape = parsed.input.shape or (1, -1)
    interpreter = _tflm.Interpreter.from_bytes(bytes(model), arena_size=_arena_room(parsed, model))
    codes = np.asarray(codes, dtype=np.int8)
    rows = []
    for row in codes.reshape(len(codes), -1):
        interpreter.set_input(row.reshape(shape), 0)
        interpreter.invoke()
        rows.append(np.array(interpreter.get_output(0), dtype=np.int8).reshape(-1))
    return np.stack(rows)


def _arena_room(parsed: tflite_model.TfliteModel, model: bytes) -> int:
    """An arena the runtime cannot run out of: twice every computed tensor at once (64-bit host
    structures included), and never less than it once took by default. The runtime's own default
    holds a model of small weights and large activations short (a 64x64x48 feature map)."""
    activations = sum(int(np.prod(t.shape)) * 4 for t in parsed.tensors if t.data is None)
    return max(65536, 16 * len(model), 2 * activations + 65536)


def int8_outputs(model: bytes, codes: np.ndarray) -> tuple[np.ndarray, str]:
    """The oracle's answers and its name: TFLM when available, else the integer reference."""
    if tflm_available():
        return tflm_outputs(model, codes), "tflm"
    return reference.run(tflite_model.read(model), codes), "reference"


def arena_bytes(model: bytes) -> int:
    """Tensor arena TFLM allocates for the model (host build: 64-bit pointers, so an upper bound)."""
    if _tflm is None:
        raise RuntimeError("measuring the arena needs the tflite-micro wheel (Linux x86_64)")
    interpreter = _tflm.Interpreter.from_bytes(bytes(model), arena_size=_arena_room(tflite_model.read(model), model))
    with fd_output(2) as text:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", "".join(text))
    if match is None:
        raise RuntimeError("TFLM did not report its arena allocation")
    return int(match.group(1))
