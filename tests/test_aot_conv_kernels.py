"""The AOT engine's CONV_2D and DEPTHWISE_CONV_2D kernels on random layers: the DSP path (the
Cortex-M4's: im2col into the planned scratch, the input offset folded into the bias, SXTB16 and
SMLAD) and the portable path give the same codes, and both give the integer reference's.

The layers are drawn here (integers, no TensorFlow) over odd sizes, every padding, strides,
dilations, 1x1 filters read in place or gathered, depths that are and are not multiples of four,
odd pixel and channel counts, input zero points at -128 and 127, multipliers of 1 or more (left
shifts that wrap in int32) and biases near the int32 limits (sums that wrap, outputs that
saturate). The DSP path runs on the host with ACLE's SMLAD and SXTB16 defined portably (as
tests/test_aot_kernels.py does for FULLY_CONNECTED), under AddressSanitizer and UBSan, and for real
on the Cortex-M4 under QEMU (whole models: tests/test_conv_models.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from pipeline.emit import aot
from pipeline.int8 import plan
from pipeline.int8.ops import conv_2d, depthwise_conv_2d, max_pool_2d, shapes
from pipeline.int8.ops.average_pool_2d import Pool
from pipeline.int8.ops.conv_2d import Conv2D
from pipeline.int8.ops.depthwise_conv_2d import DepthwiseConv2D
from pipeline.int8.reference import Step
from pipeline.int8.tflite_model import Operator, Tensor
from aot_harness import CC, HARNESS, write_model_folder
from test_aot_kernels import ACLE_ON_HOST, INT32_MAX, INT32_MIN, run_host


def window(size: int, taps: int, stride: int, dilation: int, padding: str) -> shapes.Window:
    """TFLite's geometry along one axis (shapes.window's arithmetic)."""
    reach = (taps - 1) * dilation + 1
    out = (size + stride - 1) // stride if padding == "SAME" else (size + stride - reach) // stride
    assert out >= 1, (size, taps, stride, dilation, padding)
    return shapes.Window(size, out, taps, stride, dilation, max((out - 1) * stride + reach - size, 0) // 2)


def requantization(rng: np.random.Generator, channels: int, taps: int, kind: str) -> tuple[np.ndarray, ...]:
    """Per channel: bias, multiplier and shift; the shift scaled to the sums' size so the outputs
    spread over the codes (or, for kind "left-shift", a multiplier of 2^s: sums that wrap once shifted)."""
    multipliers = rng.integers(1 << 30, 1 << 31, size=channels)
    if kind == "left-shift":
        shifts = rng.integers(1, 12, size=channels)
    else:
        scale = int(np.log2(taps * 127 * 128 + 1)) - 6
        shifts = -rng.integers(max(scale - 2, 0), scale + 3, size=channels)
    if kind == "int32-limits":
        margin = rng.integers(0, 1 << 20, size=channels)
        bias = np.where(rng.random(channels) < 0.5, INT32_MAX - margin, INT32_MIN + margin)
    else:
        bias = rng.integers(-(1 << 14), 1 << 14, size=channels)
    return bias.astype(np.int32), multipliers.astype(np.int64), shifts.astype(np.int64)


def activation(rng: np.random.Generator, kind: str) -> tuple[int, int, int]:
    output_offset = int(rng.integers(-128, 128))
    if kind == "relu":
        return output_offset, max(-128, output_offset), 127
    return output_offset, -128, 127


def random_conv(seed: int, hw: tuple[int, int], depth: int, channels: int, kernel: tuple[int, int] = (3, 3),
                stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1), padding: str = "SAME",
                groups: int = 1, input_zp: int | None = None, kind: str = "plain") -> Conv2D:
    rng = np.random.default_rng(seed)
    rows = window(hw[0], kernel[0], stride[0], dilation[0], padding)
    cols = window(hw[1], kernel[1], stride[1], dilation[1], padding)
    weights = rng.integers(-127, 128, size=(channels, *kernel, depth // groups)).astype(np.int8)
    bias, multipliers, shifts = requantization(rng, channels, weights[0].size, kind)
    zp = int(rng.integers(-128, 128)) if input_zp is None else input_zp
    output_offset, low, high = activation(rng, kind)
    return Conv2D(weights, bias, rows, cols, groups, -zp, output_offset, multipliers, shifts, low, high, True)


def random_depthwise(seed: int, hw: tuple[int, int], depth: int, multiplier: int = 1,
                     kernel: tuple[int, int] = (3, 3), stride: tuple[int, int] = (1, 1),
                     dilation: tuple[int, int] = (1, 1), padding: str = "SAME", input_zp: int | None = None,
                     kind: str = "plain") -> DepthwiseConv2D:
    rng = np.random.default_rng(seed)
    rows = window(hw[0], kernel[0], stride[0], dilation[0], padding)
    cols = window(hw[1], kernel[1], stride[1], dilation[1], padding)
    weights = rng.integers(-127, 128, size=(*kernel, depth, multiplier)).astype(np.int8)
    bias, multipliers, shifts = requantization(rng, depth * multiplier, kernel[0] * kernel[1], kind)
    zp = int(rng.integers(-128, 128)) if input_zp is None else input_zp
    output_offset, low, high = activation(rng, kind)
    return DepthwiseConv2D(weights, bias, rows, cols, -zp, output_offset, multipliers, shifts, low, high, True)


def channels_of(layer: Any, depth: int) -> int:
    """Output channels of a layer of `depth` input channels (a pooling keeps them)."""
    if isinstance(layer, Conv2D):
        return layer.weights.shape[0]
    return layer.weights.shape[2] * layer.weights.shape[3] if isinstance(layer, DepthwiseConv2D) else depth


def depth_of(layer: Any) -> int:
    return layer.weights.shape[3] * layer.groups if isinstance(layer, Conv2D) else layer.weights.shape[2]


def unit_of(layer: Any) -> tuple[str, Any]:
    if isinstance(layer, Conv2D):
        return "CONV_2D", conv_2d
    return ("DEPTHWISE_CONV_2D", depthwise_conv_2d) if isinstance(layer, DepthwiseConv2D) else ("MAX_POOL_2D", max_pool_2d)


def chain_depths(layers: Sequence[Any]) -> list[int]:
    """Channels of the chain's input, then of each layer's output (the first layer is a convolution)."""
    depths = [depth_of(layers[0])]
    for layer in layers:
        depths.append(channels_of(layer, depths[-1]))
    return depths


def chain_header(layers: Sequence[Any]) -> str:
    """model_aot.h for layers drawn here, in a chain from the model's input to its output: the
    emitter and the memory plan the build uses (the scratch in the arena), over tensors made to fit."""
    depths = chain_depths(layers)
    shapes_ = [(1, layers[0].rows.size, layers[0].cols.size, depths[0])]
    for layer, depth in zip(layers, depths[1:]):
        shapes_.append((1, layer.rows.out, layer.cols.out, depth))
    tensors = [Tensor(k, f"t{k}", shape, "INT8", np.array([1.0]), np.array([0]), None)
               for k, shape in enumerate(shapes_)]
    steps = [Step(Operator(k, unit_of(layer)[0], (k,), (k + 1,), "NONE"), layer, (k,), k + 1)
             for k, layer in enumerate(layers)]
    return aot.emit(steps, tensors, 0, len(layers))


def expected(layers: Sequence[Any], codes: np.ndarray) -> np.ndarray:
    x = codes.reshape(len(codes), layers[0].rows.size, layers[0].cols.size, -1)
    for layer in layers:
        x = unit_of(layer)[1].apply(layer, x)
    return x.reshape(len(codes), -1)


def model_dir(layers: Sequence[Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = layers[0].rows.size * layers[0].cols.size * depth_of(layers[0])
    outputs = layers[-1].rows.out * layers[-1].cols.out * chain_depths(layers)[-1]
    (folder / "model_aot.h").write_text(chain_header(layers))
    (folder / "model_info.h").write_text(f"#define MODEL_INPUT_COUNT {inputs}\n#define MODEL_OUTPUT_COUNT {outputs}\n")
    (folder / "harness.c").write_text(HARNESS)
    (folder / "acle_on_host.h").write_text(ACLE_ON_HOST)
    return folder


def input_codes(count: int, rows: int, seed: int) -> np.ndarray:
    """Random rows, and rows of all -128 and all 127 (the extremes of every sum)."""
    rng = np.random.default_rng(seed)
    extremes = np.array([[-128] * count, [127] * count], dtype=np.int8)
    return np.concatenate([extremes, rng.integers(-128, 128, size=(rows, count)).astype(np.int8)])


CONV_CASES: dict[str, dict[str, Any]] = {
    "3x3-same-depth3": dict(hw=(7, 5), depth=3, channels=4),
    "3x3-valid-odd-channels": dict(hw=(7, 6), depth=5, channels=5, padding="VALID"),
    "1x1-in-place": dict(hw=(6, 6), depth=8, channels=5, kernel=(1, 1)),
    "1x1-in-place-stride2-valid": dict(hw=(7, 9), depth=12, channels=6, kernel=(1, 1), stride=(2, 2),
                                       padding="VALID"),
    "1x1-gathered-depth3": dict(hw=(5, 5), depth=3, channels=3, kernel=(1, 1)),
    "5x3-stride2-same": dict(hw=(9, 8), depth=2, channels=3, kernel=(5, 3), stride=(2, 2)),
    "stride3-valid": dict(hw=(10, 11), depth=3, channels=2, stride=(3, 2), padding="VALID"),
    "dilation2-same": dict(hw=(9, 9), depth=2, channels=3, dilation=(2, 2)),
    "dilation-1x2-valid": dict(hw=(6, 9), depth=3, channels=2, kernel=(2, 3), dilation=(1, 2), padding="VALID"),
    "conv1d-shape": dict(hw=(1, 19), depth=6, channels=8, kernel=(1, 5), padding="VALID"),
    "even-kernel-same": dict(hw=(6, 7), depth=2, channels=3, kernel=(4, 2), stride=(2, 1)),
    "ds-cnn-stem": dict(hw=(49, 10), depth=1, channels=8, kernel=(10, 4), stride=(2, 2)),
    "kernel-as-input": dict(hw=(3, 3), depth=4, channels=7, padding="VALID"),
    "one-pixel": dict(hw=(1, 1), depth=7, channels=3, kernel=(1, 1)),
    "zero-point-128": dict(hw=(5, 4), depth=3, channels=3, input_zp=-128),
    "zero-point-127": dict(hw=(5, 4), depth=3, channels=4, input_zp=127),
    "relu": dict(hw=(5, 5), depth=4, channels=4, kind="relu"),
    "left-shift": dict(hw=(5, 5), depth=3, channels=4, kind="left-shift"),
    "int32-limits": dict(hw=(6, 6), depth=5, channels=4, kind="int32-limits"),
    "grouped": dict(hw=(5, 6), depth=6, channels=4, groups=2),
    # a pixel pair's fields as one 3 x 4 window: int16 weights (48 pixels), an odd last filter
    "windowed-wide": dict(hw=(6, 8), depth=4, channels=5),
    # int8 weights (12 pixels), rows strided by 2, a 5-wide filter over depth 4
    "windowed-int8-stride-rows": dict(hw=(6, 4), depth=4, channels=6, kernel=(3, 5), stride=(2, 1)),
    "windowed-valid-depth8": dict(hw=(5, 7), depth=8, channels=3, kernel=(2, 2), padding="VALID"),
}

DEPTHWISE_CASES: dict[str, dict[str, Any]] = {
    "3x3-same": dict(hw=(7, 6), depth=8),
    "3x3-same-odd-depth": dict(hw=(7, 6), depth=7),
    "3x3-valid-stride2": dict(hw=(9, 7), depth=3, stride=(2, 2), padding="VALID"),
    "3x3-stride2-same": dict(hw=(8, 9), depth=12, stride=(2, 2)),
    "multiplier-2": dict(hw=(5, 5), depth=3, multiplier=2),
    "10x8-stride2": dict(hw=(12, 10), depth=1, kernel=(10, 8), stride=(2, 2)),
    "5x5-dilation2": dict(hw=(9, 8), depth=6, kernel=(5, 5), dilation=(2, 2)),
    "zero-point-128": dict(hw=(5, 5), depth=4, input_zp=-128),
    "zero-point-127": dict(hw=(5, 5), depth=5, input_zp=127, kind="relu"),
    "left-shift": dict(hw=(4, 6), depth=4, kind="left-shift"),
    "int32-limits": dict(hw=(6, 6), depth=6, kind="int32-limits"),
}


def check(layers: Sequence[Any], folder: Path, seed: int) -> None:
    folder = model_dir(layers, folder)
    codes = input_codes(layers[0].rows.size * layers[0].cols.size * depth_of(layers[0]), 40, seed)
    want = expected(layers, codes)
    portable, simd = run_host(folder, codes, simd=False), run_host(folder, codes, simd=True)
    np.testing.assert_array_equal(portable, want)
    np.testing.assert_array_equal(simd, want)


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_paths_agree_with_the_reference(name: str, tmp_path: Path) -> None:
    check([random_conv(len(name) * 7, **CONV_CASES[name])], tmp_path, len(name))


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("name", list(DEPTHWISE_CASES))
def test_depthwise_paths_agree_with_the_reference(name: str, tmp_path: Path) -> None:
    check([random_depthwise(len(name) * 5, **DEPTHWISE_CASES[name])], tmp_path, len(name))


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_a_chain_shares_the_arena_with_the_scratch(tmp_path: Path) -> None:
    """A stem, a depthwise-separable block and a strided 3x3: each op's scratch is planned beside the
    tensors alive at its step, and the chain agrees with the reference."""
    layers = [random_conv(1, (11, 9), 3, 8, stride=(2, 2)), random_depthwise(2, (6, 5), 8),
              random_conv(3, (6, 5), 8, 12, kernel=(1, 1)), random_conv(4, (6, 5), 12, 6, stride=(2, 2))]
    header = chain_header(layers)
    assert "arena + " in header
    check(layers, tmp_path, 9)


IN_PLACE_CHAINS: dict[str, list[Any]] = {
    # a 3x3 depthwise, a 1x1 read in place otherwise, a 5x5 depthwise dilated by (1, 2), each
    # written over its input by the plan
    "even-channels": [random_conv(41, (7, 6), 3, 8), random_depthwise(42, (7, 6), 8, kind="relu"),
                      random_conv(43, (7, 6), 8, 8, kernel=(1, 1)),
                      random_depthwise(44, (7, 6), 8, kernel=(5, 5), dilation=(1, 2)),
                      random_conv(45, (7, 6), 8, 8, kernel=(1, 1), kind="relu")],
    # odd channels (a 1x1 gathered, a depthwise channel past the fours), an even 4x2 filter
    "odd-channels": [random_conv(51, (6, 5), 2, 7), random_depthwise(52, (6, 5), 7, kernel=(4, 2)),
                     random_conv(53, (6, 5), 7, 7, kernel=(1, 1)), random_depthwise(54, (6, 5), 7),
                     random_conv(55, (6, 5), 7, 5)],
}


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("chain", list(IN_PLACE_CHAINS))
def test_layers_written_over_their_input(chain: str, tmp_path: Path) -> None:
    """Stride-1 depthwise and 1x1 layers whose input no later op reads: the plan gives their output
    their input's bytes (ops 1 to 3 here), and both paths still agree with the reference."""
    import re
    layers = IN_PLACE_CHAINS[chain]
    header = chain_header(layers)
    calls = re.findall(r"aot_\w+\(&model_aot_op(\d+), (arena \+ \d+|input), [^,]+, (arena \+ \d+|output)\)", header)
    assert {int(k) for k, read, written in calls if read == written} >= {1, 2, 3}, calls
    check(layers, tmp_path, 5)


def max_pool(hw: tuple[int, int], size: tuple[int, int], stride: tuple[int, int], padding: str = "VALID") -> Pool:
    return Pool(window(hw[0], size[0], stride[0], 1, padding), window(hw[1], size[1], stride[1], 1, padding), -128, 127)


CONV1D_POOLED = [random_conv(65, (1, 19), 6, 8, kernel=(1, 5), padding="VALID"), max_pool((1, 15), (1, 2), (1, 2)),
                 random_conv(67, (1, 7), 8, 4, kernel=(1, 1))]
"""A Conv1D net's middle: its max pooling goes over the first convolution's output."""


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_max_pooling_written_over_its_input(tmp_path: Path) -> None:
    """VALID max pooling whose input no later op reads goes over that input (overlapping 3x3 windows
    at stride 1, 2x2 at stride 2, a Conv1D's 1x2), so a Conv1D net needs no buffer for the pooled
    tensor; a 3x3 SAME one (windows start in the padding before the input) gets its own bytes. Both paths agree with
    the reference."""
    import re
    layers = [random_conv(61, (9, 8), 3, 5), max_pool((9, 8), (3, 3), (1, 1)), random_conv(62, (7, 6), 5, 6),
              max_pool((7, 6), (2, 2), (2, 2)), max_pool((3, 3), (3, 3), (1, 1), "SAME"),
              random_conv(63, (3, 3), 6, 4, kind="relu"), random_conv(64, (3, 3), 4, 3, kernel=(1, 1))]
    header = chain_header(layers)
    calls = re.findall(r"aot_max_pool_2d\(&model_aot_op(\d+), (arena \+ \d+), (arena \+ \d+)\)", header)
    assert {int(k): read == written for k, read, written in calls} == {1: True, 3: True, 4: False}, calls
    check(layers, tmp_path, 6)
    assert re.search(r"aot_max_pool_2d\(&model_aot_op1, (arena \+ \d+), \1\)", chain_header(CONV1D_POOLED))
    check(CONV1D_POOLED, tmp_path / "conv1d", 7)


def test_windowed_layers_and_their_scratch() -> None:
    """The windowed cases above take that path (int16 and int8 weights); its scratch is one window
    of k_h x (k_w + 1) pixels, a third less than two 3x3 fields; an odd output width, a stride or a
    dilation along the row, or rows of part words keep two fields."""
    layers = {name: random_conv(len(name) * 7, **CONV_CASES[name]) for name in CONV_CASES if name.startswith("windowed")}
    assert all(conv_2d.windowed(layer) for layer in layers.values())
    assert [conv_2d.wide(layer) for layer in layers.values()] == [True, False, True]
    assert conv_2d.scratch_bytes(layers["windowed-wide"]) == 3 * 4 * 4
    resnet_block = random_conv(1, (32, 32), 16, 16)
    assert conv_2d.windowed(resnet_block) and conv_2d.scratch_bytes(resnet_block) == 192  # not 2 x 144
    for name in ("3x3-same-depth3", "5x3-stride2-same", "dilation2-same", "conv1d-shape"):
        assert not conv_2d.windowed(random_conv(1, **CONV_CASES[name])), name


def test_scratch_is_planned_for_its_step_only() -> None:
    layer = random_conv(5, (7, 7), 3, 4)
    assert conv_2d.scratch_bytes(layer) == 2 * 28  # two patches of 27 codes, rounded to 28
    assert conv_2d.scratch_bytes(random_conv(5, (4, 4), 8, 4, kernel=(1, 1))) == 0  # read in place
    steps = [Step(Operator(0, "CONV_2D", (0,), (1,), "NONE"), layer, (0,), 1)]
    layout = plan.plan(steps, {0: 147, 1: 196}, 0, 1)
    assert layout.places[plan.scratch_key(0)].where == "arena" and layout.arena_bytes == 56


def test_folded_bias_wraps_like_the_accumulator() -> None:
    folded = conv_2d.folded_bias(np.array([INT32_MAX], dtype=np.int32), 128, np.array([127 * 9]))
    assert folded.tolist() == [INT32_MIN + 128 * 127 * 9 - 1]


REQUANTIZE_CHECK = r"""
#include <stdio.h>
#include "aot/common.h"
/* requantize_offset_hi and requantize_quick against requantize_offset: every shift from -31 to 20, accumulators at and near
 * the int32 limits and 0, multipliers over [2^30, 2^31), offsets at -128, 0 and 127. */
int main(void) {
  static const int32_t accs[] = {0, 1, -1, 2, -2, 127, -128, 65535, -65536, 1 << 30, -(1 << 30), 2147483647,
                                 -2147483647 - 1, 2147483646, -2147483647, 123456789, -987654321};
  static const int32_t mults[] = {1 << 30, (1 << 30) + 1, 1518500250, 2147483647};
  static const int32_t offsets[] = {-128, 0, 127};
  uint32_t state = 12345u;
  long differ = 0, checked = 0;
  for (int shift = -31; shift <= 20; ++shift)
    for (unsigned m = 0; m < sizeof mults / sizeof *mults + 64; ++m)
      for (unsigned a = 0; a < sizeof accs / sizeof *accs + 256; ++a)
        for (unsigned o = 0; o < 3; ++o) {
          state = state * 1664525u + 1013904223u;
          int32_t acc = a < sizeof accs / sizeof *accs ? accs[a] : (int32_t)(state ^ (state >> 7));
          int32_t mult = m < sizeof mults / sizeof *mults ? mults[m] : (int32_t)((1u << 30) | (state >> 2));
          int32_t want = requantize_offset(acc, mult, shift, offsets[o]);
          differ += requantize_offset_hi(acc, mult, shift, offsets[o]) != want;
          if (shift <= -2 && shift >= -23) { /* conv_2d.py's quick_requantization, in C */
            int32_t high = (int32_t)((1u << (-shift - 2)) + (uint32_t)offsets[o] * (1u << (-shift - 1)));
            differ += requantize_quick(acc, mult, high, -shift - 1) != want;
          }
          ++checked;
        }
  printf("%ld %ld\n", checked, differ);
  return 0;
}
"""


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_the_quick_requantizations_are_requantize_offset(tmp_path: Path) -> None:
    import subprocess
    from aot_harness import FIRMWARE, WARNINGS
    (tmp_path / "check.c").write_text(REQUANTIZE_CHECK)
    built = subprocess.run([CC, "-std=c99", "-O2", *WARNINGS, "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                            "-I", str(FIRMWARE / "engines"), str(tmp_path / "check.c"), "-o", str(tmp_path / "check")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    run = subprocess.run([str(tmp_path / "check")], capture_output=True, text=True)
    checked, differ = map(int, run.stdout.split())
    assert run.returncode == 0 and checked > 1_000_000 and differ == 0


# ---- the DSP paths on the Cortex-M4 itself (QEMU): the asm blocks, which the host build replaces --------

QEMU_CHAINS: dict[str, list[Any]] = {
    # a stem gathered with padding (wide weights, odd channels), a 3x3 depthwise (border and inside
    # pixels, channels past the fours), a 1x1 read in place
    "stem-depthwise-pointwise": [random_conv(11, (9, 7), 3, 7, kind="relu"), random_depthwise(12, (9, 7), 7, kind="relu"),
                                 random_conv(13, (9, 7), 7, 8, kernel=(1, 1))],
    # a strided 3x3 to an odd pixel count, a 5x5 depthwise, int8 weights (few pixels); zero points
    # at the int8 ends
    "strided-int8-weights": [random_conv(21, (10, 9), 4, 12, stride=(2, 2), input_zp=127),
                             random_depthwise(22, (5, 5), 12, kernel=(5, 5), input_zp=-128),
                             random_conv(25, (5, 5), 12, 6)],
    # sums at the int32 limits (they wrap, the outputs saturate) and left shifts
    "int32-limits": [random_conv(31, (6, 6), 5, 6, kind="int32-limits")],
    "left-shift": [random_depthwise(32, (6, 5), 8, kind="left-shift")],
    # depthwise and 1x1 layers written over their input (see test_layers_written_over_their_input)
    "in-place": IN_PLACE_CHAINS["even-channels"],
    "pooled-in-place": CONV1D_POOLED,
    # pixel pairs' fields as one window: wide weights, int8 ones (one layer each: a chain's answers
    # would saturate)
    "windowed-wide": [random_conv(72, (6, 8), 4, 8, kernel=(3, 5), stride=(2, 1))],
    "windowed-int8": [random_conv(73, (3, 8), 8, 3, kernel=(2, 3), padding="VALID")],
}


def qemu_model_dir(layers: Sequence[Any], folder: Path, name: str) -> Path:
    """The emitted files the QEMU image builds from, for layers the build never saw."""
    inputs = layers[0].rows.size * layers[0].cols.size * depth_of(layers[0])
    outputs = layers[-1].rows.out * layers[-1].cols.out * chain_depths(layers)[-1]
    return write_model_folder(folder, chain_header(layers), [unit_of(layer)[0] for layer in layers], inputs, outputs,
                              -int(layers[0].input_offset), int(layers[-1].output_offset), True, name)


@pytest.mark.parametrize("chain", list(QEMU_CHAINS))
def test_qemu_dsp_paths_agree_with_the_reference(chain: str) -> None:
    from pipeline.device.serial_client import Device
    from pipeline.emulation import qemu
    from pipeline.emulation.emulate import emulated_device
    from pipeline.paths import BUILD_ROOT
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem() or qemu.qemu_problem())
    layers = QEMU_CHAINS[chain]
    folder = qemu_model_dir(layers, BUILD_ROOT / "aot-conv-kernels" / chain / "model", f"conv-kernels-{chain}")
    codes = input_codes(layers[0].rows.size * layers[0].cols.size * depth_of(layers[0]), 60, seed=3)
    want = expected(layers, codes)
    assert len(np.unique(want)) > 20 or {-128, 127} <= set(np.unique(want).tolist())  # a wrong sum shows
    with emulated_device("qemu", model_dir=folder, build_dir=BUILD_ROOT / "aot-conv-kernels" / chain / "qemu",
                         timeout=120.0) as port, Device(port, timeout=60) as device:
        answers = device.predict_codes_many(codes.tolist())
    np.testing.assert_array_equal(np.array(answers, dtype=np.int8), want)
