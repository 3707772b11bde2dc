"""CONV_2D: each output value is a window of every input channel (of its group) times one filter,
with per-channel or per-tensor int8 weights, strides, dilation, SAME or VALID padding and a fused
ReLU/ReLU6, as TFLM's reference ConvPerChannel computes it: taps on the padding are skipped (they
would add 0 after the input offset), the bias is added to the int32 sum, each output channel is
requantized by its own multiplier (scales multiplied in double, on the board's library too)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


def folded_bias(bias: np.ndarray, input_offset: int, weight_sums: np.ndarray) -> np.ndarray:
    """bias + input_offset * each filter's weight sum, wrapped to int32 as the kernel's int32 sum is: the
    DSP paths then sum raw input codes, the padding's taps filled with the zero point (adding
    (zero point + offset) * w = 0 to the folded sum, as TFLM's skipped taps add nothing)."""
    folded = bias.astype(np.int64) + np.int64(input_offset) * weight_sums.astype(np.int64)
    return (((folded + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


def quick_requantization(shifts: np.ndarray, output_offset: int) -> np.ndarray | None:
    """Per channel, the high word of requantize_quick's rounding constant (aot/common.h),
    2^(r - 2) + output_offset * 2^(r - 1) for the right shift r = -shift, when every channel's r is
    in [2, 23]; None otherwise (the kernels then take requantize_offset_hi)."""
    right = -np.asarray(shifts, dtype=np.int64)
    if right.size == 0 or right.min() < 2 or right.max() > 23:
        return None
    high = (np.int64(1) << (right - 2)) + np.int64(output_offset) * (np.int64(1) << (right - 1))
    return (((high + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)


def channel_records(name: str, bias: np.ndarray, input_offset: int, weight_sums: np.ndarray,
                    multipliers: np.ndarray, shifts: np.ndarray, output_offset: int) -> tuple[str, dict[str, object]]:
    """The DSP paths' per-channel records, four int32 a channel (aot/common.h's aot_channels): the
    folded bias, the multiplier, then requantize_quick's high word and right shift when every
    channel's right shift is in [2, 23] (quick), else the shift and 0; the table and struct fields."""
    high = quick_requantization(shifts, output_offset)
    shifts = np.asarray(shifts, dtype=np.int64)
    third = high.astype(np.int64) if high is not None else shifts
    fourth = -shifts - 1 if high is not None else np.zeros_like(shifts)
    records = np.stack([folded_bias(bias, input_offset, weight_sums).astype(np.int64),
                        np.asarray(multipliers, dtype=np.int64), third, fourth], axis=1)
    return (c.array("int32_t", f"{name}_c", records),
            {"channels": f"{name}_c", "quick": int(high is not None)})


def direct(layer: Conv2D) -> bool:
    """A 1x1 filter without padding over a depth of a multiple of four: the DSP path reads each output
    pixel's codes in place in the input (a matrix product), no im2col."""
    return (layer.groups == 1 and layer.rows.filter == layer.cols.filter == 1 and layer.rows.pad == 0
            and layer.cols.pad == 0 and layer.weights.shape[3] % 4 == 0)


def windowed(layer: Conv2D) -> bool:
    """Whether the DSP path gathers a pixel pair's receptive fields as one window of k_h rows of
    k_w + 1 pixels (the second pixel's field one pixel right of the first's), a third less scratch
    for a 3x3 filter than two fields: stride and dilation 1 along the row, pairs that never straddle
    two rows (an even output width), and rows of whole words (k_w x depth a multiple of four), so
    each filter row's weights start on a group of four codes."""
    return (layer.groups == 1 and not direct(layer) and not in_place(layer) and layer.cols.filter > 1
            and layer.cols.stride == 1 and layer.cols.dilation == 1 and layer.cols.out % 2 == 0
            and layer.cols.filter * layer.weights.shape[3] % 4 == 0)


def paired_weights(weights: np.ndarray) -> np.ndarray:
    """int8 [out, KH, KW, depth] -> int8 [out * n], n = K (KH x KW x depth) rounded up to four with
    zeros: the filters in pairs (0 and 1, 2 and 3, ...), each pair's rows interleaved a word (four
    codes) at a time, so aot/conv_2d.h's DSP path reads both rows of a pair through one pointer; an
    odd last filter is its row alone. The same bytes as the flatbuffer's, but for the rounding."""
    out = weights.shape[0]
    rows = weights.reshape(out, -1)
    n = (rows.shape[1] + 3) // 4 * 4
    padded = np.zeros((out, n), dtype=np.int8)
    padded[:, :rows.shape[1]] = rows
    pairs = out // 2 * 2
    woven = padded[:pairs].reshape(pairs // 2, 2, n // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([woven, padded[pairs:].reshape(-1)])


WIDE_PIXELS = 16
"""A layer whose output has at least this many pixels may get its weights as int16 pairs (wide):
each weight is then widened once at build time instead of once per pixel pair, four instructions
fewer per 16 MACs (aot/conv_2d.h), one more byte of flash per weight. Below, the time saved per
byte is too little (a large filter bank on a small image: the last layers of a MobileNet)."""
WIDE_WEIGHTS = 32 * 1024
"""...and at most this many weights: the largest filter banks stay int8, so that a model's flash
stays within TFLM's (its flatbuffer holds the weights as int8; ResNet-8's last stage would
otherwise add 55 KB)."""


def wide(layer: Conv2D) -> bool:
    """Whether the emitted weights are int16 pairs (see WIDE_PIXELS, WIDE_WEIGHTS); grouped layers
    keep int8."""
    return (layer.groups == 1 and layer.rows.out * layer.cols.out >= WIDE_PIXELS
            and layer.weights.size <= WIDE_WEIGHTS)


def wide_weights(weights: np.ndarray) -> np.ndarray:
    """int8 [out, KH, KW, depth] -> int32 words: each filter's K codes rounded up to four with zeros,
    as int16 pairs in the order SXTB16 widens a word of codes (codes 4g and 4g + 2 in word 2g, low
    half first; 4g + 1 and 4g + 3 in word 2g + 1), the two filters of each pair interleaved two
    words (one group) at a time; an odd last filter alone."""
    out = weights.shape[0]
    rows = weights.reshape(out, -1)
    n = (rows.shape[1] + 3) // 4 * 4
    padded = np.zeros((out, n), dtype=np.int64)
    padded[:, :rows.shape[1]] = rows
    fours = padded.reshape(out, -1, 4) & 0xFFFF
    words = (fours[..., [0, 1]] | fours[..., [2, 3]] << 16).reshape(out, -1)  # [out, n / 2]
    words = words.astype(np.uint32).view(np.int32)
    pairs = out // 2 * 2
    woven = words[:pairs].reshape(pairs // 2, 2, n // 4, 2).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([woven, words[pairs:].reshape(-1)]).astype(np.int32)


def in_place(layer: Conv2D) -> bool:
    """Whether the kernels can write the output over the input (the plan does so where no later op
    reads the input): a 1x1 filter, stride 1, no padding, as many output as input channels; each
    pixel's (or pair's) codes are copied to the scratch before its outputs are written."""
    return (layer.groups == 1 and layer.rows.filter == layer.cols.filter == 1 and layer.rows.stride == 1
            and layer.cols.stride == 1 and layer.rows.pad == 0 and layer.cols.pad == 0
            and layer.weights.shape[0] == layer.weights.shape[3])


def scratch_bytes(layer: Conv2D) -> int:
    """The arena bytes aot/conv_2d.h's DSP path gathers two pixels' receptive fields into: twice the
    filter's size rounded up to four, or one window of both (windowed); none for a direct or a
    grouped convolution (the portable path), unless it may run in place (then the copies of its pixels)."""
    if not in_place(layer) and (layer.groups != 1 or direct(layer)):
        return 0
    if windowed(layer):
        return layer.rows.filter * (layer.cols.filter + 1) * layer.weights.shape[3]
    return 2 * ((layer.weights[0].size + 3) // 4 * 4)


def c_table(layer: Conv2D, name: str, inputs: list[Tensor], output: Tensor, over_input: bool = False,
            epilogue: dict[str, Any] | None = None) -> str:
    """over_input: the plan put the output over the input (in_place(layer) allows it): only then may the
    kernel take the in-place path, so a kernel whose output lies elsewhere has none to get wrong.
    epilogue: more fields of the struct (an ADD each output goes through: pipeline/int8/fusion.py)."""
    _, height, width, depth = inputs[0].shape
    _, out_height, out_width, channels = output.shape
    fields = {"in_h": height, "in_w": width, "in_c": depth, "out_h": out_height, "out_w": out_width,
              "out_c": channels, **geometry(layer.rows, layer.cols), "groups": layer.groups, "weights": f"{name}_w",
              "bias": f"{name}_b", "multipliers": f"{name}_m", "shifts": f"{name}_s",
              "input_offset": layer.input_offset, "output_offset": layer.output_offset, "act_min": layer.act_min,
              "act_max": layer.act_max, "direct": int(direct(layer)), "in_place": int(over_input and in_place(layer)),
              "windowed": int(windowed(layer)), **(epilogue or {})}
    sums = layer.weights.astype(np.int64).reshape(channels, -1).sum(axis=1)
    records, more = channel_records(name, layer.bias, layer.input_offset, sums, layer.multipliers, layer.shifts,
                                    layer.output_offset)
    fields.update(more)
    if wide(layer):
        fields.update(weights=0, wide=f"{name}_v")
        table = c.array("int32_t", f"{name}_v", wide_weights(layer.weights))
    else:
        fields.update(wide=0)
        table = c.array("int8_t", f"{name}_w", paired_weights(layer.weights))
    return (table + records + requantization_tables(name, layer.bias, layer.multipliers, layer.shifts)
            + c.struct(KERNEL, name, fields, f"CONV_2D {height}x{width}x{depth} -> {out_height}x{out_width}x{channels}, "
                       f"{layer.rows.filter}x{layer.cols.filter} filters, {'per-channel' if layer.per_channel else 'per-tensor'} "
                       "weights"))
