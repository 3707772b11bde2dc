"""MAX_POOL_2D: each output value is the largest of a window of one channel."""
from __future__ import annotations

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "MAX_POOL_2D"


def macs(model: TfliteModel, op: Operator) -> int:
    return shapes.window_values(model, op)
