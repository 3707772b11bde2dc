"""DEPTHWISE_CONV_2D: each output channel m + c * multiplier is a window of input channel c times its
own filter, as TFLM's reference DepthwiseConvPerChannel computes it (padding taps skipped, the
bias added to the int32 sum, per-channel requantization in double)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, conv_2d, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("DEPTHWISE_CONV_2D",)
AOT = True
KERNEL = "depthwise_conv_2d"


@dataclass(frozen=True)
class DepthwiseConv2D:
    weights: np.ndarray            # int8 [KH, KW, input channels, multiplier]
    bias: np.ndarray               # int32 [out channels]
    rows: shapes.Window
    cols: shapes.Window
    input_offset: int
    output_offset: int
    multipliers: np.ndarray        # int64 [out channels]
    shifts: np.ndarray
    act_min: int
    act_max: int
    per_channel: bool


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the filter's height x width (filter shape [1, h, w, channels])."""
    _, height, width, _ = model.tensors[op.inputs[1]].shape
    return shapes.output_values(model, op) * height * width


def lower(model: TfliteModel, op: Operator, board: bool = False) -> DepthwiseConv2D:
    inp, out, weights, (height, width, depth), (out_height, out_width, channels) = conv_2d.operands(model, op)
    if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[3] != channels or channels % depth:
        raise shapes.refuse(op, f"weights of shape {weights.shape} for {depth} input and {channels} output channels")
    multiplier = channels // depth
    o = op.options
    if o.get("depth_multiplier", multiplier) not in (multiplier, 0):
        raise shapes.refuse(op, f"depth multiplier {o['depth_multiplier']} where the shapes give {multiplier}")
    rows = shapes.window(op, o["padding"], height, weights.shape[1], o["stride_h"], o["dilation_h_factor"], out_height)
    cols = shapes.window(op, o["padding"], width, weights.shape[2], o["stride_w"], o["dilation_w_factor"], out_width)
    multipliers, shifts, low, high = conv_2d.requantization(model, op, channels)
    filters = weights[0].reshape(weights.shape[1], weights.shape[2], depth, multiplier)
    return DepthwiseConv2D(filters, conv_2d.bias_of(model, op, channels), rows, cols, -int(inp.zero_points[0]),
                           int(out.zero_points[0]), multipliers, shifts, low, high,
                           model.tensors[op.inputs[1]].per_channel)


def accumulate(x: np.ndarray, layer: DepthwiseConv2D) -> np.ndarray:
    """int32 sums [B, OH, OW, channels * multiplier], bias included (exact in float64, as CONV_2D's)."""
    filters = layer.weights.astype(np.float64)

    def sums(rows: np.ndarray) -> np.ndarray:
        shifted = np.asarray(rows, dtype=np.int64) + layer.input_offset
        win = shapes.windows(shifted, layer.rows, layer.cols, 0).astype(np.float64)  # [B, OH, OW, C, KH, KW]
        acc = np.einsum("bhwckl,klcm->bhwcm", win, filters, optimize=True)
        return acc.reshape(*acc.shape[:3], -1)  # channel c * multiplier + m

    taps = layer.rows.out * layer.cols.out * layer.weights.size
    acc = np.rint(shapes.chunked(x, taps, sums)).astype(np.int64)
    return fixedpoint.wrap32(acc + layer.bias.astype(np.int64))


def apply(layer: DepthwiseConv2D, x: np.ndarray) -> np.ndarray:
    return fixedpoint.requantize(accumulate(x, layer), layer.multipliers, layer.shifts, layer.output_offset,
                                 layer.act_min, layer.act_max)


def c_table(layer: DepthwiseConv2D, name: str, inputs: list[Tensor], output: Tensor) -> str:
    _, height, width, depth = inputs[0].shape
    _, out_height, out_width, channels = output.shape
    fields = {"in_h": height, "in_w": width, "in_c": depth, "out_h": out_height, "out_w": out_width,
              "out_c": channels, **conv_2d.geometry(layer.rows, layer.cols), "weights": f"{name}_w",
              "bias": f"{name}_b", "multipliers": f"{name}_m", "shifts": f"{name}_s",
              "input_offset": layer.input_offset, "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max}
    return (c.array("int8_t", f"{name}_w", layer.weights)  # [KH][KW][channel c][m]: output channel c * M + m
            + conv_2d.requantization_tables(name, layer.bias, layer.multipliers, layer.shifts)
            + c.struct(KERNEL, name, fields, f"DEPTHWISE_CONV_2D {height}x{width}x{depth} -> "
                       f"{out_height}x{out_width}x{channels}, {layer.rows.filter}x{layer.cols.filter} filters"))
