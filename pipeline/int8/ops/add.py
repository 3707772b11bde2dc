"""ADD: two tensors, each rescaled, summed value by value."""
from __future__ import annotations

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "ADD"


def macs(model: TfliteModel, op: Operator) -> int:
    """One per output value."""
    return shapes.output_values(model, op)
