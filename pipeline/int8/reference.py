"""The int8 model computed exactly as the tflite-micro runtime's kernels compute it, in numpy.

This is the specification the emitted C engine implements and the oracle where the tflite-micro
wheel is missing. Everything is read from the flatbuffer. Each op is its unit in pipeline.int8.ops;
this module wires them: the model's ops in their order (a graph, not only a chain: an op may read any
tensor an earlier op wrote, ADD and CONCATENATION read several), run on batches of inferences.

board=True computes what the board's TFLM library (Chirale 2.0.0, an older TFLM) computes where it
differs from the runtime: FULLY_CONNECTED's per-tensor multipliers, MEAN.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from pipeline.int8.ops import UNITS, missing_kernel, shapes
from pipeline.int8.ops.shapes import UnsupportedModelError
from pipeline.int8.tflite_model import Operator, TfliteModel

__all__ = ["UnsupportedModelError", "SUPPORTED_OPS", "Step", "graph", "lower", "run", "aot_refusal"]

SUPPORTED_OPS = tuple(UNITS)
BOARD_DIFFERENCES = {"FULLY_CONNECTED": "multiplies per-tensor input and weight scales in float",
                     "MEAN": "averages with its older kernel (the sum truncated by the count, or in float)"}
"""Where the board's library (Chirale 2.0.0) computes otherwise than the runtime, by op: board=True
computes it so."""
BATCH_VALUES = 1 << 22
"""Inferences are run together, as many as keep the widest tensor of the batch within this many values."""


@dataclass(frozen=True)
class Step:
    """One op of the model, lowered: which tensors it reads (its activations) and writes."""
    op: Operator
    layer: Any
    inputs: tuple[int, ...]
    output: int

    @property
    def unit(self) -> ModuleType:
        return UNITS[self.op.op]


def graph(model: TfliteModel, board: bool = False) -> list[Step]:
    """The model's ops in order, each lowered by its unit; refuses what the reference cannot compute,
    naming the op."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(f"expected one input and one output tensor, found {len(model.inputs)} and "
                                    f"{len(model.outputs)}")
    written = {model.inputs[0]}
    steps = []
    for op in model.operators:
        unit = UNITS.get(op.op)
        if unit is None:
            raise UnsupportedModelError(
                f"op {op.index} is {op.op}; the integer reference and the AOT engine compute only "
                f"{', '.join(SUPPORTED_OPS)} (use the TFLM engine for this model)")
        reads = shapes.activations(model, op)
        if not reads or len(op.outputs) != 1:
            raise shapes.refuse(op, f"{len(reads)} computed inputs and {len(op.outputs)} outputs")
        unknown = [model.tensors[i].name for i in reads if i not in written]
        if unknown:
            raise shapes.refuse(op, f"reads '{unknown[0]}', which no op before it writes")
        steps.append(Step(op, unit.lower(model, op, board), reads, op.outputs[0]))
        written.add(op.outputs[0])
    if model.outputs[0] not in written:
        raise UnsupportedModelError("no op writes the model's output")
    return steps


def lower(model: TfliteModel, board: bool = False) -> list[Any]:
    """Each op's integer parameters, in order (what the AOT engine's tables hold)."""
    return [step.layer for step in graph(model, board)]


def run(model: TfliteModel, codes: np.ndarray, board: bool = False) -> np.ndarray:
    """int8 input codes [batch, inputs] -> int8 output codes [batch, outputs]; board: as the board's
    TFLM library computes them."""
    steps = graph(model, board)
    codes = np.asarray(codes, dtype=np.int8).reshape(len(codes), -1)
    widest = max([shapes.values(model.tensors[i].shape) for s in steps for i in (*s.inputs, s.output)] + [1])
    last_read = {i: k for k, s in enumerate(steps) for i in s.inputs}
    rows = max(1, BATCH_VALUES // widest)
    out = []
    for start in range(0, max(len(codes), 1), rows):
        chunk = codes[start:start + rows]
        tensors = {model.inputs[0]: chunk.reshape(len(chunk), *shapes.row_shape(model.input))}
        for k, step in enumerate(steps):
            y = step.unit.apply(step.layer, *(tensors[i] for i in step.inputs))
            tensors[step.output] = np.asarray(y, dtype=np.int8).reshape(
                len(chunk), *shapes.row_shape(model.tensors[step.output]))
            for i in set(step.inputs):  # an op may read one tensor twice (x + x)
                if last_read.get(i) == k and i != model.outputs[0]:
                    del tensors[i]  # no later op reads it: a wide model's batch keeps only live tensors
        out.append(tensors[model.outputs[0]].reshape(len(chunk), -1))
    return np.concatenate(out) if out else np.zeros((0, shapes.values(model.output.shape)), dtype=np.int8)


def aot_refusal(model: TfliteModel) -> str | None:
    """Why the AOT engine cannot run the model, in one line: an op it has no kernel for, or one the
    reference refuses (its parameters); None when it can."""
    refusal = missing_kernel(model)
    if refusal is None:
        try:
            graph(model)
        except UnsupportedModelError as refused:
            refusal = str(refused)
    return refusal
