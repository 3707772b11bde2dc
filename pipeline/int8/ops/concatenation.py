"""CONCATENATION of int8 tensors along one axis, each in the output's quantization (TFLM's int8 kernel
takes no other: nothing is rescaled, the codes are copied in order)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("CONCATENATION",)
AOT = True
KERNEL = "concatenation"
MAX_INPUTS = 16
"""AOT_MAX_CONCATENATED of aot/concatenation.h."""


@dataclass(frozen=True)
class Concatenation:
    sources: tuple[int | np.ndarray, ...]  # an activation's index among the op's, or a constant's codes
    shapes: tuple[tuple[int, ...], ...]
    axis: int                              # of the full shapes (the model's batch dimension is 0)


def macs(model: TfliteModel, op: Operator) -> int:
    return 0


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Concatenation:
    out = shapes.int8(model, op, op.outputs[0])
    activations = shapes.activations(model, op)
    sources: list[int | np.ndarray] = []
    for index in op.inputs:
        tensor = shapes.int8(model, op, index)
        if not shapes.same_quantization(tensor, out):
            raise shapes.refuse(op, f"input '{tensor.name}' is quantized otherwise than the output: TFLM's int8 "
                                    "CONCATENATION does not rescale")
        sources.append(activations.index(index) if index in activations
                       else shapes.constant(model, op, index, "input").astype(np.int8))
    axis = int(op.options.get("axis", 0)) % len(out.shape)
    if axis == 0:
        raise shapes.refuse(op, "a concatenation along the batch dimension")
    if op.activation != "NONE":
        raise shapes.refuse(op, f"fused activation {op.activation}")
    return Concatenation(tuple(sources), tuple(tuple(model.tensors[i].shape) for i in op.inputs), axis)


def apply(layer: Concatenation, *activations: np.ndarray) -> np.ndarray:
    """Each inference's tensors in their full shapes, stacked on a new first axis, joined along the op's."""
    batch = len(activations[0])
    parts = [np.asarray(activations[s], dtype=np.int8).reshape(batch, *shape) if isinstance(s, int)
             else np.broadcast_to(s.reshape(1, *shape), (batch, *shape))
             for s, shape in zip(layer.sources, layer.shapes)]
    return np.concatenate(parts, axis=layer.axis + 1).reshape(batch, -1)


def c_table(layer: Concatenation, name: str, inputs: list[Tensor], output: Tensor) -> str:
    if len(layer.sources) > MAX_INPUTS:
        raise ValueError(f"a CONCATENATION of {len(layer.sources)} inputs: the AOT kernel takes {MAX_INPUTS}")
    tables = "".join(c.array("int8_t", f"{name}_c{k}", s) for k, s in enumerate(layer.sources) if not isinstance(s, int))
    blocks = [int(np.prod(shape[layer.axis:])) for shape in layer.shapes]
    fields = {"count": len(blocks), "outer": int(np.prod(layer.shapes[0][:layer.axis])), "block": blocks}
    return tables + c.struct(KERNEL, name, fields, f"CONCATENATION of {len(blocks)} along axis {layer.axis}")


def c_arguments(layer: Concatenation, name: str) -> list[str]:
    """Each input's pointer, in order: `in<k>` for the op's k-th activation, a constant's table."""
    return [f"in{s}" if isinstance(s, int) else f"{name}_c{k}" for k, s in enumerate(layer.sources)]


def c_call(name: str, reads: list[str], output: str) -> str:
    """The kernel takes its inputs as one array of pointers."""
    return (f"  {{\n    const int8_t *const inputs[] = {{{', '.join(reads)}}};\n"
            f"    aot_concatenation(&{name}, inputs, {output});\n  }}")
