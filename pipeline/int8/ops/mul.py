"""MUL: two tensors multiplied value by value, the product rescaled."""
from __future__ import annotations

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "MUL"


def macs(model: TfliteModel, op: Operator) -> int:
    """One per output value."""
    return shapes.output_values(model, op)
