"""One-op int8 models over each op's parameter space, written from seeded integers (tflite_writer),
and the check every op test makes: the integer reference equals the tflite-micro runtime on every
row, bit for bit (and, where the AOT engine has the op's kernel, so does its host build)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

import tflite_writer as w
from pipeline.int8 import oracle, reference, sweep, tflite_model


def out_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    reach = (kernel - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size + stride - reach) // stride


def zero_point(rng: np.random.Generator, choice: int | None) -> int:
    return int(rng.integers(-128, 128)) if choice is None else choice


def conv(seed: int, height: int, width: int, depth: int, channels: int, kernel: tuple[int, int] = (3, 3),
         stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1), padding: str = "SAME",
         activation: str = "NONE", per_channel: bool = True, input_zp: int | None = None,
         output_zp: int | None = None, depthwise: bool = False, saturate: bool = False) -> bytes:
    """One CONV_2D (or DEPTHWISE_CONV_2D, channels = depth x multiplier) on [1, H, W, depth]: weights
    in -127..127, biases up to 2**15, scales drawn so that most outputs land inside int8 (saturate:
    an output scale 20 times finer, so that many do not)."""
    rng = np.random.default_rng(seed)
    kh, kw = kernel
    oh = out_size(height, kh, stride[0], dilation[0], padding)
    ow = out_size(width, kw, stride[1], dilation[1], padding)
    shape = (1, kh, kw, channels) if depthwise else (channels, kh, kw, depth)
    weights = rng.integers(-127, 128, size=shape)
    in_scale = float(np.float32(rng.uniform(0.005, 0.05)))
    w_scales = rng.uniform(0.002, 0.02, size=channels if per_channel else 1).astype(np.float32)
    taps = kh * kw * (1 if depthwise else depth)
    out_scale = float(np.float32(in_scale * float(w_scales.mean()) * math.sqrt(taps) * 70 / (20 if saturate else 1)))
    bias_scales = (in_scale * w_scales.astype(np.float64)).astype(np.float32)
    tensors = [w.tensor("input", (1, height, width, depth), in_scale, zero_point(rng, input_zp)),
               w.tensor("weights", shape, w_scales, 0, weights, quantized_dimension=3 if depthwise else 0),
               w.tensor("bias", (channels,), np.broadcast_to(bias_scales, (channels,)), 0,
                        rng.integers(-(1 << 15), 1 << 15, size=channels), "INT32"),
               w.tensor("output", (1, oh, ow, channels), out_scale, zero_point(rng, output_zp))]
    op = (w.depthwise_conv_2d(0, 1, 2, 3, channels // depth, padding, stride, dilation, activation) if depthwise
          else w.conv_2d(0, 1, 2, 3, padding, stride, dilation, activation))
    return w.write(tensors, [op], [0], [3])


def pool(kind: str, seed: int, height: int, width: int, depth: int, filter_size: tuple[int, int],
         stride: tuple[int, int], padding: str, activation: str = "NONE", zp: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    oh = out_size(height, filter_size[0], stride[0], 1, padding)
    ow = out_size(width, filter_size[1], stride[1], 1, padding)
    scale, z = float(np.float32(rng.uniform(0.01, 0.1))), zero_point(rng, zp)
    return w.write([w.tensor("input", (1, height, width, depth), scale, z),
                    w.tensor("output", (1, oh, ow, depth), scale, z)],
                   [w.pool_2d(kind, 0, 1, filter_size, padding, stride, activation)], [0], [1])


def elementwise(kind: str, seed: int, shape: Sequence[int], second: str = "same", activation: str = "NONE",
                zps: tuple[int | None, int | None, int | None] = (None, None, None), scale_ratio: float = 1.0,
                constant_shape: Sequence[int] | None = None) -> bytes:
    """ADD or MUL of the input [shape] and a second operand in its own scale and zero point: computed
    from the input by a DEPTHWISE_CONV_2D (second "same": a 1x1 one, the input's shape; "rows": a
    1 x W one, [1, H, 1, C]; "pixel": an H x W one, [1, 1, 1, C]: broadcast as TFLite broadcasts
    them), or "constant" codes of constant_shape."""
    rng = np.random.default_rng(seed)
    height, width, depth = shape[1], shape[2], shape[3]
    sa = float(np.float32(rng.uniform(0.01, 0.1)))
    sb = float(np.float32(sa * scale_ratio * rng.uniform(0.5, 2)))
    tensors = [w.tensor("a", shape, sa, zero_point(rng, zps[0]))]
    op_list = []
    if second == "constant":
        b_shape = tuple(constant_shape)
        tensors.append(w.tensor("b", b_shape, sb, zero_point(rng, zps[1]), rng.integers(-128, 128, size=b_shape)))
    else:
        kernel = {"same": (1, 1), "rows": (1, width), "pixel": (height, width)}[second]
        b_shape = (1, height - kernel[0] + 1, width - kernel[1] + 1, depth)
        w_scale = float(np.float32(sb / (sa * 127 * math.sqrt(kernel[0] * kernel[1]))))
        tensors += [w.tensor("dw/weights", (1, *kernel, depth), w_scale, 0, rng.integers(-127, 128, (1, *kernel, depth))),
                    w.tensor("dw/bias", (depth,), sa * w_scale, 0, rng.integers(-500, 500, depth), "INT32"),
                    w.tensor("b", b_shape, sb, zero_point(rng, zps[1]))]
        op_list.append(w.depthwise_conv_2d(0, 1, 2, 3, 1, "VALID"))
    out_shape = tuple(np.broadcast_shapes(tuple(shape), b_shape))
    so = float(np.float32((sa + sb) * rng.uniform(0.6, 1.5) if kind == "ADD" else sa * sb * 128 * rng.uniform(0.3, 1.5)))
    tensors.append(w.tensor("out", out_shape, so, zero_point(rng, zps[2])))
    b_index = len(tensors) - 2
    op_list.append(w.elementwise(kind, 0, b_index, len(tensors) - 1, activation))
    return w.write(tensors, op_list, [0], [len(tensors) - 1])


def wide_feature_map() -> bytes:
    """A 3x3 convolution of a 64x64x4 image to 48 channels (192 KB of features), then global average
    pooling: more alive at once than the Nano's RAM leaves the AOT engine, and a TFLM arena past it."""
    rng = np.random.default_rng(1)
    return w.write([w.tensor("image", (1, 64, 64, 4), 0.02, 0),
                    w.tensor("conv/weights", (48, 3, 3, 4), 0.01, 0, rng.integers(-127, 128, (48, 3, 3, 4))),
                    w.tensor("conv/bias", (48,), 0.0002, 0, rng.integers(-99, 99, 48), "INT32"),
                    w.tensor("features", (1, 64, 64, 48), 0.05, -128),
                    w.tensor("pooled", (1, 1, 1, 48), 0.05, -128)],
                   [w.conv_2d(0, 1, 2, 3, "SAME", activation="RELU"), w.pool_2d("AVERAGE_POOL_2D", 3, 4, (64, 64))],
                   [0], [4])


def rows(model: bytes, count: int = 64, seed: int = 3) -> np.ndarray:
    """Random int8 rows of the model's input, with every code at its extremes in two of them."""
    width = math.prod(tflite_model.read(model).input.shape)
    random = sweep.random_rows(seed, width, 0, count)
    return np.vstack([random, np.full((1, width), -128, np.int8), np.full((1, width), 127, np.int8)])


def assert_reference_matches_runtime(model: bytes, codes: np.ndarray, folder: Path | None = None) -> np.ndarray:
    """The reference equals the runtime on every row, and so does the AOT engine's host build (with
    UBSan; in `folder`) where given one; returns the runtime's answers."""
    expected = oracle.tflm_outputs(model, codes)
    actual = reference.run(tflite_model.read(model), codes)
    _same(expected, actual, "reference")
    if folder is not None:
        from test_aot import run_aot
        assert reference.aot_refusal(tflite_model.read(model)) is None
        _same(expected, run_aot(model, codes, folder), "AOT engine")
    return expected


def _same(expected: np.ndarray, actual: np.ndarray, who: str) -> None:
    differ = np.flatnonzero(np.any(actual != expected, axis=1))
    assert differ.size == 0, (f"{who}: {differ.size} of {len(expected)} rows differ; first row {int(differ[0])}: runtime "
                              f"{expected[differ[0]][:12].tolist()}, {who} {actual[differ[0]][:12].tolist()}")
