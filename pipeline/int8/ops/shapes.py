"""What the op units share about tensors: sizes per inference, the int8 checks every kernel makes,
which inputs are activations, and the window geometry of convolutions and pooling as TFLite
computes it (ComputeOutSize, ComputePaddingWithOffset)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel


class UnsupportedModelError(PipelineError, ValueError):
    """The model holds something the integer reference (and so the AOT engine) does not compute."""


def values(shape: tuple[int, ...]) -> int:
    """Values of one batch row: (1, 25, 20, 8) holds 4,000; a 1-D shape is all values."""
    return math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)


def row_shape(tensor: Tensor) -> tuple[int, ...]:
    """A tensor's shape without its batch dimension: what one inference holds."""
    return tuple(tensor.shape[1:]) if len(tensor.shape) > 1 else tuple(tensor.shape)


def output_values(model: TfliteModel, op: Operator) -> int:
    return values(model.tensors[op.outputs[0]].shape)


def input_values(model: TfliteModel, op: Operator) -> int:
    return values(model.tensors[op.inputs[0]].shape)


def window_values(model: TfliteModel, op: Operator) -> int:
    """A pooling op's values read: one per window element (filter height x width) per output value."""
    return output_values(model, op) * op.options["filter_height"] * op.options["filter_width"]


def refuse(op: Operator, problem: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"op {op.index} {op.op}: {problem}")


ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
"""The fused activations TFLM's int8 kernels clamp to (CalculateActivationRangeQuantized)."""


def fused_activation(op: Operator) -> str:
    """The op's fused activation, refused unless the kernels take it."""
    if op.activation not in ACTIVATIONS:
        raise refuse(op, f"fused activation {op.activation} is not supported")
    return op.activation


def int8(model: TfliteModel, op: Operator, index: int, per_tensor: bool = True) -> Tensor:
    """Tensor `index` of the model, checked to be int8 (with one scale and zero point if per_tensor)."""
    tensor = model.tensors[index]
    if tensor.dtype != "INT8" or (per_tensor and tensor.scales.size != 1) or tensor.scales.size == 0:
        raise refuse(op, f"tensor '{tensor.name}' is not {'per-tensor ' if per_tensor else ''}INT8 "
                         f"({tensor.dtype}, {tensor.scales.size} scales)")
    return tensor


def constant(model: TfliteModel, op: Operator, index: int, what: str) -> np.ndarray:
    """A constant input's values (weights, bias, axis, paddings), refused when it is computed."""
    tensor = model.tensors[index]
    if tensor.data is None:
        raise refuse(op, f"{what} '{tensor.name}' is not constant")
    return np.asarray(tensor.data)


def activations(model: TfliteModel, op: Operator) -> tuple[int, ...]:
    """The op's inputs that are computed at run time (not constants in the flatbuffer), in order."""
    return tuple(i for i in op.inputs if i >= 0 and model.tensors[i].data is None)


def same_quantization(a: Tensor, b: Tensor) -> bool:
    return (np.float32(a.scales[0]) == np.float32(b.scales[0])
            and int(a.zero_points[0]) == int(b.zero_points[0]))


def nhwc(model: TfliteModel, op: Operator, index: int) -> tuple[int, int, int]:
    """(height, width, channels) of a 4-D [1, H, W, C] activation."""
    shape = model.tensors[index].shape
    if len(shape) != 4:
        raise refuse(op, f"tensor '{model.tensors[index].name}' has shape {shape}, not [1, H, W, C]")
    return int(shape[1]), int(shape[2]), int(shape[3])


@dataclass(frozen=True)
class Window:
    """Where each output position's window starts and how it steps, along one spatial axis."""

    size: int        # input positions
    out: int         # output positions
    filter: int      # filter taps
    stride: int
    dilation: int
    pad: int         # positions of padding before the first input (TFLite pads after with the rest)

    @property
    def reach(self) -> int:
        """Input positions one window spans: (filter - 1) * dilation + 1."""
        return (self.filter - 1) * self.dilation + 1

    @property
    def pad_after(self) -> int:
        """Padding past the last input that the last window reaches."""
        return max((self.out - 1) * self.stride + self.reach - self.size - self.pad, 0)


def window(op: Operator, padding: str, size: int, filter_size: int, stride: int, dilation: int,
           out: int) -> Window:
    """TFLite's geometry: the output size padding gives (checked against the output tensor's), and
    the padding before the input, total // 2 of (out - 1) * stride + reach - size."""
    if stride < 1 or dilation < 1 or filter_size < 1:
        raise refuse(op, f"stride {stride}, dilation {dilation}, filter {filter_size}: each must be at least 1")
    reach = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        expected = (size + stride - 1) // stride
    elif padding == "VALID":
        expected = (size + stride - reach) // stride
    else:
        raise refuse(op, f"padding {padding}")
    if expected != out:
        raise refuse(op, f"output size {out} where padding {padding} gives {expected}")
    total = max((out - 1) * stride + reach - size, 0)
    return Window(size, out, filter_size, stride, dilation, total // 2)


def windows(x: np.ndarray, rows: Window, cols: Window, fill: int) -> np.ndarray:
    """[B, H, W, C] -> [B, OH, OW, C, KH, KW]: every window's taps, the padding filled with `fill`
    (a view: no copy until used)."""
    padded = np.pad(x, ((0, 0), (rows.pad, rows.pad_after), (cols.pad, cols.pad_after), (0, 0)),
                    constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(padded, (rows.reach, cols.reach), axis=(1, 2))
    view = view[:, ::rows.stride, ::cols.stride][:, :rows.out, :cols.out]
    return view[..., ::rows.dilation, ::cols.dilation]


def taps_inside(rows: Window, cols: Window) -> np.ndarray:
    """[OH, OW, KH, KW] booleans: the window taps that fall on the input, not on its padding."""
    inside = np.ones((1, rows.size, cols.size, 1), dtype=np.int8)
    return windows(inside, rows, cols, 0)[0, :, :, 0].astype(bool)


CHUNK_TAPS = 1 << 23
"""Window matrices are built for this many taps at most at a time (64 MB of float64)."""


def chunked(x: np.ndarray, taps_per_row: int, fn) -> np.ndarray:
    """fn over the batch's rows a few at a time, so no window matrix outgrows CHUNK_TAPS."""
    step = max(1, CHUNK_TAPS // max(taps_per_row, 1))
    if len(x) <= step:
        return fn(x)
    return np.concatenate([fn(x[start:start + step]) for start in range(0, len(x), step)])
