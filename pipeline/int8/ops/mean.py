"""MEAN: the average over some axes (H and W: the global average pooling Keras converts to MEAN)."""
from __future__ import annotations

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "MEAN"


def macs(model: TfliteModel, op: Operator) -> int:
    """One per value summed: every input value."""
    return shapes.input_values(model, op)
