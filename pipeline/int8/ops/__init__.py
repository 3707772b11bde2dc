"""One module per TFLite op: what the project knows of it, in one place.

Each unit names its op (NAME) and counts its multiply-accumulates per inference (macs), as the
field counts them: a convolution's or a dense layer's weights applied once per output value;
pooling, one per window element read; elementwise ADD and MUL, one per output value; MEAN, one per
value summed. An op without a unit counts none (RESHAPE, SOFTMAX, LOGISTIC, ...: no products).
"""
from __future__ import annotations

from pipeline.int8.ops import (add, average_pool_2d, conv_2d, depthwise_conv_2d, fully_connected, max_pool_2d, mean,
                               mul)
from pipeline.int8.tflite_model import TfliteModel

UNITS = {unit.NAME: unit for unit in (fully_connected, conv_2d, depthwise_conv_2d, average_pool_2d, max_pool_2d, add,
                                      mul, mean)}


def macs(model: TfliteModel) -> int:
    """Multiply-accumulates of one inference of the whole model."""
    return sum(UNITS[op.op].macs(model, op) for op in model.operators if op.op in UNITS)


def macs_by_op(model: TfliteModel) -> dict[str, int]:
    """The same, per op name, in first-use order."""
    counts: dict[str, int] = {}
    for op in model.operators:
        if op.op in UNITS:
            counts[op.op] = counts.get(op.op, 0) + UNITS[op.op].macs(model, op)
    return counts
