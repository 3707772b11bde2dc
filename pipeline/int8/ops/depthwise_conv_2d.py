"""DEPTHWISE_CONV_2D: each output value is a window of one input channel times one filter."""
from __future__ import annotations

from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "DEPTHWISE_CONV_2D"


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the filter's height x width (filter shape [1, h, w, channels])."""
    _, height, width, _ = model.tensors[op.inputs[1]].shape
    return shapes.output_values(model, op) * height * width
