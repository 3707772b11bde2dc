"""CONV_2D: each output value is a window of every input channel times one filter."""
from __future__ import annotations

import math

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "CONV_2D"


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the filter's height x width x input channels (filter shape [out, h, w, in])."""
    return shapes.output_values(model, op) * math.prod(model.tensors[op.inputs[1]].shape[1:])
