"""The int8 answers a device must give: TFLM's own runtime where its wheel exists."""
from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys

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
    interpreter = _interpreter(parsed, bytes(model))
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
    interpreter = _interpreter(tflite_model.read(bytes(model)), bytes(model))
    with fd_output(2) as text:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", "".join(text))
    if match is None:
        raise RuntimeError("TFLM did not report its arena allocation")
    return int(match.group(1))


class RuntimeCrash(tflite_model.ModelFormatError):
    """tflite-micro's runtime crashed or refused a model that passed the structure check."""


CHILD_TIMEOUT_S = 600.0
_TRIED: set[str] = set()
"""SHA-256 of the models TFLM already took in a child process: the first contact happens once a process."""

_CHILD = r"""
import sys
import numpy as np
from tflite_micro import runtime
arena, dtype, shape = int(sys.argv[1]), sys.argv[2], tuple(int(d) for d in sys.argv[3].split(",") if d)
interpreter = runtime.Interpreter.from_bytes(sys.stdin.buffer.read(), arena_size=arena)
if dtype == "int8":
    for fill in (0, -128, 127):
        interpreter.set_input(np.full(shape, fill, np.int8), 0)
        interpreter.invoke()
        interpreter.get_output(0)
"""


def _interpreter(parsed: tflite_model.TfliteModel, model: bytes):
    """TFLM's interpreter on the model, once a child process has shown that loading it and
    invoking it on constant rows neither crashes (a C++ crash would kill this process with no
    word) nor fails."""
    arena = _arena_room(parsed, model)
    first_contact(parsed, model, arena)
    return _tflm.Interpreter.from_bytes(model, arena_size=arena)


def first_contact(parsed: tflite_model.TfliteModel, model: bytes, arena: int | None = None) -> None:
    """Runs TFLM on the model in a child process, once per model and process; a child that dies by
    a signal, fails or hangs raises RuntimeCrash with one line."""
    digest = hashlib.sha256(model).hexdigest()
    if digest in _TRIED:
        return
    arena = _arena_room(parsed, model) if arena is None else arena
    inputs = parsed.inputs[:1]
    dtype = "int8" if inputs and parsed.input.dtype == "INT8" else "other"
    shape = ",".join(str(d) for d in (parsed.input.shape if inputs else ()))
    what = f"the model (SHA-256 {digest[:12]})"
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(arena), dtype, shape], input=model,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeCrash(f"{what}: the tflite-micro runtime ran over {CHILD_TIMEOUT_S:.0f} s reading it "
                           "and three constant rows, in a child process; stopped") from None
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise RuntimeCrash(f"{what}: the tflite-micro runtime crashed reading it ({name}), in a child process")
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        said = [line for line in lines if not line.startswith(("Traceback", "File ", "^", "~"))]
        raise RuntimeCrash(f"{what}: the tflite-micro runtime cannot run it: {'; '.join(said[-3:])[:400]}")
    _TRIED.add(digest)
