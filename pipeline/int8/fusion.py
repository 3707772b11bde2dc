"""Ops the AOT engine runs as one: a residual block's last convolution and the ADD of its output
with the skip.

The ADD reads each convolution output once, at the index it writes, beside the skip's code there;
run as the convolution's epilogue (aot/conv_2d.h's aot_conv_2d_add), the convolution's own output
tensor never exists, and the plan may write the sum over the skip. A ResNet block then keeps two
tensors alive where it kept three. The arithmetic is the two units' own, in the same order: the
convolution's code, then the ADD of it and the skip's code, so the fused step answers bit for bit
what the two steps answer.

The fused step runs where the ADD ran (every operand is written by then: a strided block's shortcut
runs before it, so the block's input dies sooner), reading (skip, convolution input): the plan's
in-place rule looks at a step's first input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.int8.ops import add, conv_2d
from pipeline.int8.ops.add import Add
from pipeline.int8.ops.conv_2d import Conv2D
from pipeline.int8.reference import Step
from pipeline.int8.tflite_model import Tensor


@dataclass(frozen=True)
class ConvAdd:
    conv: Conv2D
    add: Add
    conv_first: bool
    """Whether the convolution's output is the ADD's first operand."""
    add_op: int
    """The ADD's op index, for the emitted comment."""


class ConvAddUnit:
    """The fused step's unit: the convolution's kernel with the ADD as its epilogue."""

    KERNEL = "conv_2d"

    @staticmethod
    def apply(layer: ConvAdd, skip: np.ndarray, x: np.ndarray) -> np.ndarray:
        y = conv_2d.apply(layer.conv, x)
        operands = (y, skip) if layer.conv_first else (skip, y)
        return add.apply(layer.add, *operands)

    @staticmethod
    def in_place(layer: ConvAdd) -> bool:
        """The sum may go over the skip (the step's first input): each of its codes is read once, just
        before the sum's code at the same index is written; fuse() never takes the convolution's own
        input as the skip."""
        return True

    @staticmethod
    def scratch_bytes(layer: ConvAdd) -> int:
        return conv_2d.scratch_bytes(layer.conv)

    @staticmethod
    def c_table(layer: ConvAdd, name: str, inputs: list[Tensor], output: Tensor, over_input: bool = False) -> str:
        """The ADD's struct, then the convolution's pointing at it (its own in-place path stays off:
        the output may be over the skip, never over the convolution's input)."""
        epilogue = {"add": f"&{name}_add", "add_conv_first": int(layer.conv_first)}
        return (add.c_table(layer.add, f"{name}_add", inputs, output)
                + conv_2d.c_table(layer.conv, name, inputs[1:], output, epilogue=epilogue))

    @staticmethod
    def c_call(name: str, reads: list[str], output: str) -> str:
        skip, x, scratch = reads
        return f"  aot_conv_2d_add(&{name}, {x}, {skip}, {scratch}, {output}); /* CONV_2D and the ADD after it */"


@dataclass(frozen=True)
class Fused(Step):
    """A convolution and its ADD as one step (the convolution's op names it)."""

    @property
    def unit(self) -> type[ConvAddUnit]:
        return ConvAddUnit


def fuse(steps: Sequence[Step], model_output: int) -> list[Step]:
    """The steps with each CONV_2D whose output only an ADD reads, of the same shape as the ADD's
    other operand (no broadcast), and not the convolution's input, run as one step where the ADD ran."""
    readers: dict[int, list[int]] = {}
    for k, step in enumerate(steps):
        for t in set(step.inputs):
            readers.setdefault(t, []).append(k)
    fused: dict[int, Step] = {}  # ADD's step -> the fused step
    gone: set[int] = set()  # the convolutions' own steps
    for k, step in enumerate(steps):
        if step.op.op != "CONV_2D" or step.output == model_output or len(readers.get(step.output, [])) != 1:
            continue
        j = readers[step.output][0]
        adding = steps[j]
        if adding.op.op != "ADD" or j in fused or len(adding.inputs) != 2 or len(set(adding.inputs)) != 2:
            continue
        layer = adding.layer
        shapes_ = layer.operands.shapes
        if shapes_[0] != shapes_[1] or tuple(shapes_[0]) != tuple(layer.operands.out_shape):
            continue
        conv_first = adding.inputs[0] == step.output
        skip = adding.inputs[1] if conv_first else adding.inputs[0]
        if skip == step.inputs[0]:
            continue  # the convolution reads the skip's neighbours while the sum would overwrite them
        fused[j] = Fused(step.op, ConvAdd(step.layer, layer, conv_first, adding.op.index), (skip, step.inputs[0]),
                         adding.output)
        gone.add(k)
    return [fused.get(k, step) for k, step in enumerate(steps) if k not in gone]
