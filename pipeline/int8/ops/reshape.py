"""RESHAPE, EXPAND_DIMS and SQUEEZE between tensors of one scale and zero point: the same int8 bytes
in the same row-major order, so nothing to compute (Keras' Flatten converts to RESHAPE, its Conv1D to
EXPAND_DIMS or RESHAPE around a CONV_2D)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
AOT = True
KERNEL = "reshape"
ALIAS = True
"""The output is the input's bytes: the memory plan gives it no storage of its own, and the kernel (a copy)
runs only where the model is nothing else."""


@dataclass(frozen=True)
class Reshape:
    units: int


def macs(model: TfliteModel, op: Operator) -> int:
    return 0


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Reshape:
    """Only a reshape that keeps the quantization is a no-op on the codes; another would requantize."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    if not shapes.same_quantization(inp, out):
        raise shapes.refuse(op, f"input scale {float(inp.scales[0]):g} zero point {int(inp.zero_points[0])}, "
                                f"output scale {float(out.scales[0]):g} zero point {int(out.zero_points[0])}: only a "
                                f"{op.op} that keeps the quantization is computed (use the TFLM engine for this model)")
    if shapes.values(inp.shape) != shapes.values(out.shape):
        raise shapes.refuse(op, f"{shapes.values(inp.shape)} values in, {shapes.values(out.shape)} out")
    return Reshape(shapes.values(out.shape))


def apply(layer: Reshape, x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.int8).reshape(len(x), layer.units)


def c_table(layer: Reshape, name: str, inputs: list[Tensor], output: Tensor) -> str:
    return c.struct(KERNEL, name, {"count": layer.units}, "the model's output is its input: a copy")
