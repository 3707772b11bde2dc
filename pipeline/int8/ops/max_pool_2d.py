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


def in_place(layer: Pool) -> bool:
    """Whether the output may be written over the input (the plan does so where no later op reads the
    input): without padding before the input (TFLite puts an odd one after), the kernel's writes, in output order, stay behind every input value a
    later window reads (an output row is no wider than an input row, and a window starts at or after
    its output's index), so a Conv1D's pooling needs no second buffer."""
    return layer.rows.pad == 0 and layer.cols.pad == 0


def c_table(layer: Pool, name: str, inputs: list[Tensor], output: Tensor, over_input: bool = False) -> str:
    """over_input changes nothing: the kernel's one order of reads and writes is safe either way."""
    return average_pool_2d.pool_table(KERNEL, layer, name, inputs)
