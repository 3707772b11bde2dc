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


MAX_FAST_TAPS = 25
"""AOT_DEPTHWISE_TAPS of aot/depthwise_conv_2d.h: the DSP path's most filter taps."""


def fast(layer: DepthwiseConv2D) -> bool:
    """Whether aot/depthwise_conv_2d.h's DSP path takes the layer: a multiplier of 1, at most 25 taps."""
    return layer.weights.shape[3] == 1 and layer.weights.shape[0] * layer.weights.shape[1] <= MAX_FAST_TAPS


def quad_weights(layer: DepthwiseConv2D) -> np.ndarray:
    """int8 [KH, KW, C, M] -> the emitted order: the flatbuffer's ([tap][output channel]), or for the
    DSP path's layers (fast) the channels in fours, each four's taps in a row (four codes a tap), then
    the last C mod 4 channels as [tap][channel]: aot/depthwise_conv_2d.h reads one word a tap."""
    taps = layer.weights.shape[0] * layer.weights.shape[1]
    flat = layer.weights.reshape(taps, -1)
    if not fast(layer):
        return flat.reshape(-1)
    quads = flat.shape[1] // 4 * 4
    head = flat[:, :quads].reshape(taps, quads // 4, 4).transpose(1, 0, 2).reshape(-1)
    return np.concatenate([head, flat[:, quads:].reshape(-1)])


def in_place(layer: DepthwiseConv2D) -> bool:
    """Whether the kernels can write the output over the input (the plan does so where no later op
    reads the input): a multiplier of 1, stride 1 and an output as large as the input; each input
    row is copied to a ring of pad + 1 rows in the scratch before its outputs overwrite it."""
    return (layer.weights.shape[3] == 1 and layer.rows.stride == 1 and layer.cols.stride == 1
            and layer.rows.out == layer.rows.size and layer.cols.out == layer.cols.size)


def scratch_bytes(layer: DepthwiseConv2D) -> int:
    """The arena bytes of the DSP path's padding pixel (every channel the input zero point), rounded
    to a word (it reads four channels a word), and for a layer that may run in place its ring of
    pad + 1 input rows; none for the portable path out of place."""
    depth = layer.weights.shape[2]
    ring = (layer.rows.pad + 1) * layer.cols.size * depth if in_place(layer) else 0
    return ((depth + 3) // 4 * 4 + ring) if fast(layer) or ring else 0


def c_table(layer: DepthwiseConv2D, name: str, inputs: list[Tensor], output: Tensor, over_input: bool = False) -> str:
    """over_input: the plan put the output over the input (in_place(layer) allows it): only then may the
    kernel take the in-place path, so a kernel whose output lies elsewhere has none to get wrong."""
    _, height, width, depth = inputs[0].shape
    _, out_height, out_width, channels = output.shape
    fields = {"in_h": height, "in_w": width, "in_c": depth, "out_h": out_height, "out_w": out_width,
              "out_c": channels, **conv_2d.geometry(layer.rows, layer.cols), "weights": f"{name}_w",
              "bias": f"{name}_b", "multipliers": f"{name}_m", "shifts": f"{name}_s",
              "input_offset": layer.input_offset, "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max, "fast": int(fast(layer)), "in_place": int(over_input and in_place(layer))}
    sums = layer.weights.astype(np.int64).sum(axis=(0, 1)).reshape(channels)  # per output channel c * M + m
    records, more = conv_2d.channel_records(name, layer.bias, layer.input_offset, sums, layer.multipliers,
                                            layer.shifts, layer.output_offset)
    fields.update(more)
    return (c.array("int8_t", f"{name}_w", quad_weights(layer)) + records  # output channel c * M + m, see quad_weights
            + conv_2d.requantization_tables(name, layer.bias, layer.multipliers, layer.shifts)
            + c.struct(KERNEL, name, fields, f"DEPTHWISE_CONV_2D {height}x{width}x{depth} -> "
                       f"{out_height}x{out_width}x{channels}, {layer.rows.filter}x{layer.cols.filter} filters"))
