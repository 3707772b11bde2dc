"""CONV_2D: each output value is a window of every input channel (of its group) times one filter,
with per-channel or per-tensor int8 weights, strides, dilation, SAME or VALID padding and a fused
ReLU/ReLU6, as TFLM's reference ConvPerChannel computes it: taps on the padding are skipped (they
would add 0 after the input offset), the bias is added to the int32 sum, each output channel is
requantized by its own multiplier (scales multiplied in double, on the board's library too)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.int8 import fixedpoint
from pipeline.int8.ops import c, shapes
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel

NAMES = ("CONV_2D",)
AOT = True
KERNEL = "conv_2d"


@dataclass(frozen=True)
class Conv2D:
    weights: np.ndarray            # int8 [out channels, KH, KW, input channels of a group]
    bias: np.ndarray               # int32 [out channels]
    rows: shapes.Window
    cols: shapes.Window
    groups: int
    input_offset: int              # -input zero point
    output_offset: int             # output zero point
    multipliers: np.ndarray        # int64 [out channels]
    shifts: np.ndarray             # int64 [out channels]
    act_min: int
    act_max: int
    per_channel: bool


def macs(model: TfliteModel, op: Operator) -> int:
    """Output values times the filter's height x width x input channels (filter shape [out, h, w, in])."""
    return shapes.output_values(model, op) * math.prod(model.tensors[op.inputs[1]].shape[1:])


def requantization(model: TfliteModel, op: Operator, channels: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per output channel: input scale x filter scale / output scale in double (TFLM's
    PopulateConvolutionQuantizationParams, per-tensor scales broadcast), as multipliers and shifts;
    and the fused activation's range in output codes."""
    inp, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    weights = model.tensors[op.inputs[1]]
    if weights.scales.size not in (1, channels):
        raise shapes.refuse(op, f"{weights.scales.size} weight scales for {channels} output channels")
    if np.any(weights.zero_points != 0):
        raise shapes.refuse(op, f"weights '{weights.name}' have nonzero zero points")
    shapes.fused_activation(op)
    reals = (float(np.float32(inp.scales[0])) * np.broadcast_to(weights.scales.astype(np.float64), (channels,))
             / float(np.float32(out.scales[0])))
    multipliers, shifts = fixedpoint.quantize_multipliers(reals)
    low, high = fixedpoint.activation_range(op.activation, float(out.scales[0]), int(out.zero_points[0]))
    return multipliers, shifts, low, high


def bias_of(model: TfliteModel, op: Operator, channels: int) -> np.ndarray:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return np.zeros(channels, dtype=np.int32)
    bias = model.tensors[op.inputs[2]]
    if bias.dtype != "INT32":
        raise shapes.refuse(op, f"bias '{bias.name}' is {bias.dtype}, not INT32")
    return shapes.constant(model, op, op.inputs[2], "bias").astype(np.int32).reshape(channels)


def operands(model: TfliteModel, op: Operator) -> tuple[Tensor, Tensor, np.ndarray, tuple[int, int, int],
                                                        tuple[int, int, int]]:
    """A convolution's int8 input and output, its constant int8 weights, and the two [1, H, W, C] shapes
    (CONV_2D and DEPTHWISE_CONV_2D alike)."""
    inp, out = shapes.int8(model, op, op.inputs[0]), shapes.int8(model, op, op.outputs[0])
    shapes.int8(model, op, op.inputs[1], per_tensor=False)
    weights = shapes.constant(model, op, op.inputs[1], "weights").astype(np.int8)
    return inp, out, weights, shapes.nhwc(model, op, op.inputs[0]), shapes.nhwc(model, op, op.outputs[0])


def lower(model: TfliteModel, op: Operator, board: bool = False) -> Conv2D:
    inp, out, weights, (height, width, depth), (out_height, out_width, channels) = operands(model, op)
    if weights.ndim != 4 or weights.shape[0] != channels or depth % weights.shape[3]:
        raise shapes.refuse(op, f"weights of shape {weights.shape} for {depth} input and {channels} output channels")
    groups = depth // weights.shape[3]
    if channels % groups:
        raise shapes.refuse(op, f"{channels} output channels in {groups} groups")
    o = op.options
    rows = shapes.window(op, o["padding"], height, weights.shape[1], o["stride_h"], o["dilation_h_factor"], out_height)
    cols = shapes.window(op, o["padding"], width, weights.shape[2], o["stride_w"], o["dilation_w_factor"], out_width)
    multipliers, shifts, low, high = requantization(model, op, channels)
    return Conv2D(weights, bias_of(model, op, channels), rows, cols, groups, -int(inp.zero_points[0]),
                  int(out.zero_points[0]), multipliers, shifts, low, high, model.tensors[op.inputs[1]].per_channel)


def accumulate(x: np.ndarray, layer: Conv2D) -> np.ndarray:
    """The int32 sums before requantization, [B, OH, OW, out channels], bias included. The products
    are summed in float64, exact while |sum| < 2**53 (255 * 127 per tap: any layer this side of
    2**38 taps), then wrapped to int32 as the kernel's accumulator."""
    per_group = layer.weights.shape[0] // layer.groups
    depth = layer.weights.shape[3]
    filters = layer.weights.astype(np.float64).transpose(3, 1, 2, 0)  # [in, KH, KW, out]

    def sums(rows: np.ndarray) -> np.ndarray:
        shifted = np.asarray(rows, dtype=np.int64) + layer.input_offset
        win = shapes.windows(shifted, layer.rows, layer.cols, 0)  # [B, OH, OW, C, KH, KW]; padding adds 0
        return np.concatenate([np.einsum("bhwckl,cklo->bhwo",
                                         win[:, :, :, g * depth:(g + 1) * depth].astype(np.float64),
                                         filters[:, :, :, g * per_group:(g + 1) * per_group], optimize=True)
                               for g in range(layer.groups)], axis=-1)

    taps = layer.rows.out * layer.cols.out * layer.weights[0].size * layer.groups
    acc = np.rint(shapes.chunked(x, taps, sums)).astype(np.int64)
    return fixedpoint.wrap32(acc + layer.bias.astype(np.int64))


def apply(layer: Conv2D, x: np.ndarray) -> np.ndarray:
    """int8 [B, H, W, C] -> int8 [B, OH, OW, out channels]."""
    return fixedpoint.requantize(accumulate(x, layer), layer.multipliers, layer.shifts, layer.output_offset,
                                 layer.act_min, layer.act_max)


def requantization_tables(name: str, bias: np.ndarray, multipliers: np.ndarray, shifts: np.ndarray) -> str:
    """Per output channel: the bias, the multiplier and the shift (convolutions and depthwise alike)."""
    return (c.array("int32_t", f"{name}_b", bias) + c.array("int32_t", f"{name}_m", multipliers)
            + c.array("int8_t", f"{name}_s", shifts))


def geometry(rows: shapes.Window, cols: shapes.Window) -> dict[str, int]:
    return {"k_h": rows.filter, "k_w": cols.filter, "stride_h": rows.stride, "stride_w": cols.stride,
            "dilation_h": rows.dilation, "dilation_w": cols.dilation, "pad_h": rows.pad, "pad_w": cols.pad}


def c_table(layer: Conv2D, name: str, inputs: list[Tensor], output: Tensor) -> str:
    _, height, width, depth = inputs[0].shape
    _, out_height, out_width, channels = output.shape
    fields = {"in_h": height, "in_w": width, "in_c": depth, "out_h": out_height, "out_w": out_width,
              "out_c": channels, **geometry(layer.rows, layer.cols), "groups": layer.groups, "weights": f"{name}_w",
              "bias": f"{name}_b", "multipliers": f"{name}_m", "shifts": f"{name}_s",
              "input_offset": layer.input_offset, "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max}
    return (c.array("int8_t", f"{name}_w", layer.weights)
            + requantization_tables(name, layer.bias, layer.multipliers, layer.shifts)
            + c.struct(KERNEL, name, fields, f"CONV_2D {height}x{width}x{depth} -> {out_height}x{out_width}x{channels}, "
                       f"{layer.rows.filter}x{layer.cols.filter} filters, {'per-channel' if layer.per_channel else 'per-tensor'} "
                       "weights"))
