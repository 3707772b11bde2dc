"""AVERAGE_POOL_2D: each output value is the mean of a window of one channel, over the taps that
fall on the input (SAME padding's are not counted), rounded half away from zero in integers as
TFLM's reference AveragePool does, then clamped to the fused activation's range."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("AVERAGE_POOL_2D",)
AOT = True
KERNEL = "average_pool_2d"


@dataclass(frozen=True)
class Pool:
    rows: shapes.Window
    cols: shapes.Window
    act_min: int
    act_max: int


def macs(model: TfliteModel, op: Operator) -> int:
    return shapes.window_values(model, op)


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Pool:
    """Pooling rescales nothing: TFLite gives its input and output one quantization."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    if not shapes.same_quantization(inp, out):
        raise shapes.refuse(op, "input and output quantized differently: pooling does not rescale")
    shapes.fused_activation(op)
    height, width, depth = shapes.nhwc(model, op, op.inputs[0])
    out_height, out_width, channels = shapes.nhwc(model, op, op.outputs[0])
    if channels != depth:
        raise shapes.refuse(op, f"{depth} channels in, {channels} out")
    o = op.options
    rows = shapes.window(op, o["padding"], height, o["filter_height"], o["stride_h"], 1, out_height)
    cols = shapes.window(op, o["padding"], width, o["filter_width"], o["stride_w"], 1, out_width)
    low, high = fixedpoint.activation_range(op.activation, float(out.scales[0]), int(out.zero_points[0]))
    return Pool(rows, cols, low, high)


def apply(layer: Pool, x: np.ndarray) -> np.ndarray:
    """int8 [B, H, W, C] -> int8 [B, OH, OW, C]."""
    count = shapes.taps_inside(layer.rows, layer.cols).sum(axis=(2, 3)).astype(np.int64)[None, :, :, None]

    def means(rows: np.ndarray) -> np.ndarray:
        total = shapes.windows(np.asarray(rows, dtype=np.int64), layer.rows, layer.cols, 0).sum(axis=(4, 5))
        # C's division truncates toward zero: (acc +- count / 2) / count rounds halves away from zero
        nudged = np.where(total > 0, total + count // 2, total - count // 2)
        return np.sign(nudged) * (np.abs(nudged) // count)

    taps = layer.rows.out * layer.cols.out * layer.rows.filter * layer.cols.filter * x.shape[-1]
    return np.clip(shapes.chunked(x, taps, means), layer.act_min, layer.act_max).astype(np.int8)


def pool_table(kernel: str, layer: Pool, name: str, inputs: list[Tensor]) -> str:
    """aot_pool_2d's fields, which both pooling kernels read."""
    fields = {"in_h": layer.rows.size, "in_w": layer.cols.size, "channels": inputs[0].shape[-1],
              "out_h": layer.rows.out, "out_w": layer.cols.out, "filter_h": layer.rows.filter,
              "filter_w": layer.cols.filter, "stride_h": layer.rows.stride, "stride_w": layer.cols.stride,
              "pad_h": layer.rows.pad, "pad_w": layer.cols.pad, "act_min": layer.act_min, "act_max": layer.act_max}
    return c.struct("pool_2d", name, fields, f"{kernel.upper()} {layer.rows.filter}x{layer.cols.filter}")


def c_table(layer: Pool, name: str, inputs: list[Tensor], output: Tensor) -> str:
    return pool_table(KERNEL, layer, name, inputs)
