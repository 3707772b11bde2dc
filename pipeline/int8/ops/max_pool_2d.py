"""MAX_POOL_2D: each output value is the largest of a window of one channel, over the taps that fall
on the input, clamped to the fused activation's range (TFLM's reference MaxPool)."""
from __future__ import annotations

import numpy as np

from pipeline.int8.ops import average_pool_2d, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("MAX_POOL_2D",)
AOT = True
KERNEL = "max_pool_2d"
Pool = average_pool_2d.Pool


def macs(model: TfliteModel, op: Operator) -> int:
    return shapes.window_values(model, op)


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Pool:
    return average_pool_2d.lower(model, op, board)


def apply(layer: Pool, x: np.ndarray) -> np.ndarray:
    """int8 [B, H, W, C] -> int8 [B, OH, OW, C]; padding taps read as -128, which never wins over
    an input tap (every window holds one)."""
    def maxima(rows: np.ndarray) -> np.ndarray:
        return shapes.windows(np.asarray(rows, dtype=np.int16), layer.rows, layer.cols, -129).max(axis=(4, 5))

    taps = layer.rows.out * layer.cols.out * layer.rows.filter * layer.cols.filter * x.shape[-1]
    return np.clip(shapes.chunked(x, taps, maxima), layer.act_min, layer.act_max).astype(np.int8)


def c_table(layer: Pool, name: str, inputs: list[Tensor], output: Tensor) -> str:
    return average_pool_2d.pool_table(KERNEL, layer, name, inputs)
