"""FULLY_CONNECTED: every input times every weight row."""
from __future__ import annotations

import math

from pipeline.int8.tflite_model import Operator, TfliteModel

NAME = "FULLY_CONNECTED"


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the weight rows' length (weights [units, depth]): a batch of one, the weights' count."""
    return math.prod(model.tensors[op.outputs[0]].shape) * math.prod(model.tensors[op.inputs[1]].shape[1:])
