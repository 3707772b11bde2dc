"""Tensor sizes the op units share: values per inference, the batch left out."""
from __future__ import annotations

import math

from pipeline.int8.tflite_model import Operator, TfliteModel


def values(shape: tuple[int, ...]) -> int:
    """Values of one batch row: (1, 25, 20, 8) holds 4,000; a 1-D shape is all values."""
    return math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)


def output_values(model: TfliteModel, op: Operator) -> int:
    return values(model.tensors[op.outputs[0]].shape)


def input_values(model: TfliteModel, op: Operator) -> int:
    return values(model.tensors[op.inputs[0]].shape)


def window_values(model: TfliteModel, op: Operator) -> int:
    """A pooling op's values read: one per window element (filter height x width) per output value."""
    return output_values(model, op) * op.options["filter_height"] * op.options["filter_width"]
