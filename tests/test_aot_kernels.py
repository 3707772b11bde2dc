"""The AOT engine's FULLY_CONNECTED kernels on random layers: the SMLAD path (the Cortex-M4's) and
the portable path give the same codes, and both give the integer reference's.

The layers are made here, integers drawn at random rather than trained (no TensorFlow): shapes with
every remainder of the inputs by four, widths up to 1,024, input offsets over the whole int8 range,
multipliers of 1 or more (a left shift, with accumulators that wrap in int32 once shifted), and
biases near the int32 limits (accumulators that wrap, and outputs that saturate). The SMLAD path runs
on the host compiled with portable definitions of __smlad and __sxtb16 (ACLE's meaning, one line
each), and for real on the Cortex-M4 under QEMU; the host builds use AddressSanitizer and UBSan.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.emit import aot
from pipeline.int8 import reference
from pipeline.int8.ops import fully_connected, reshape
from pipeline.int8.ops.fully_connected import FullyConnected
from aot_harness import CC, FIRMWARE, HARNESS, WARNINGS, chain_header, write_model_folder

ACLE_ON_HOST = r"""
/* ACLE's SMLAD and SXTB16, as the Arm architecture defines them, for a host build of the M4 path. */
#include <stdint.h>
static inline int32_t __sxtb16(int32_t x) {
  uint32_t u = (uint32_t)x;
  return (int32_t)(((uint32_t)(uint16_t)(int16_t)(int8_t)(u & 0xFF)) |
                   ((uint32_t)(uint16_t)(int16_t)(int8_t)((u >> 16) & 0xFF) << 16));
}
static inline int32_t __smlad(int32_t x, int32_t y, int32_t acc) {
  int32_t lo = (int16_t)(uint16_t)((uint32_t)x & 0xFFFF) * (int16_t)(uint16_t)((uint32_t)y & 0xFFFF);
  int32_t hi = (int16_t)(uint16_t)((uint32_t)x >> 16) * (int16_t)(uint16_t)((uint32_t)y >> 16);
  return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
"""


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def random_layer(rng: np.random.Generator, inputs: int, units: int, *, per_channel: bool, left_shift: bool,
                 huge_bias: bool, relu: bool) -> FullyConnected:
    """A FULLY_CONNECTED layer of random integers, each field in the range the kernels take."""
    weights = rng.integers(-127, 128, size=(units, inputs)).astype(np.int8)
    if huge_bias:  # accumulators at the int32 limits: they wrap, and the outputs saturate
        margin = rng.integers(0, 1 << rng.integers(4, 26, size=units))
        bias = np.where(rng.random(units) < 0.5, INT32_MAX - margin, INT32_MIN + margin).astype(np.int32)
    else:
        bias = rng.integers(-(1 << 16), 1 << 16, size=units).astype(np.int32)
    count = units if per_channel else 1
    multipliers = rng.integers(1 << 30, 1 << 31, size=count)
    # Right shifts from 1 to 31 (the usual case: a multiplier below one); 0; and left shifts up to
    # 20, where acc * 2^shift leaves int32 for all but the smallest accumulators.
    shifts = rng.integers(1, 21, size=count) if left_shift else -rng.integers(0, 32, size=count)
    if per_channel:
        multipliers[0], shifts[0] = 1 << 30, 0  # the extremes of the rest: exactly one half, no shift
    if count == 1:
        multipliers, shifts = np.repeat(multipliers, units), np.repeat(shifts, units)
    output_offset = int(rng.integers(-128, 128))
    act_min, act_max = (max(-128, output_offset), 127) if relu else (-128, 127)
    return FullyConnected(weights, bias, int(rng.integers(-127, 129)), output_offset,
                          tuple(int(m) for m in multipliers), tuple(int(s) for s in shifts), act_min, act_max,
                          per_channel)


def random_chain(seed: int, widths: tuple[int, ...], **kinds: bool) -> list[FullyConnected]:
    """Layers widths[0] -> widths[1] -> ...: each layer's input offset is then arbitrary (the
    kernels take any), as are its multipliers and offsets."""
    rng = np.random.default_rng(seed)
    return [random_layer(rng, n, m, **kinds) for n, m in zip(widths, widths[1:])]


def model_dir(layers: list[FullyConnected], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_aot.h").write_text(chain_header(layers))
    (folder / "model_info.h").write_text(f"#define MODEL_INPUT_COUNT {layers[0].weights.shape[1]}\n"
                                         f"#define MODEL_OUTPUT_COUNT {layers[-1].weights.shape[0]}\n")
    (folder / "harness.c").write_text(HARNESS)
    (folder / "acle_on_host.h").write_text(ACLE_ON_HOST)
    return folder


def run_host(folder: Path, codes: np.ndarray, simd: bool) -> np.ndarray:
    exe = folder / ("aot-simd" if simd else "aot-portable")
    extra = ["-DAOT_SIMD=1", "-include", str(folder / "acle_on_host.h")] if simd else ["-DAOT_SIMD=0"]
    built = subprocess.run([CC, "-std=c99", "-O2", *WARNINGS, "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                            *extra, "-I", str(folder), "-I", str(FIRMWARE / "core"), "-I", str(FIRMWARE / "engines"),
                            str(FIRMWARE / "engines" / "engine_aot.c"), str(folder / "harness.c"), "-o", str(exe)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    text = "\n".join(" ".join(str(int(c)) for c in row) for row in codes) + "\n"
    run = subprocess.run([str(exe)], input=text, capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr
    return np.array([[int(v) for v in line.split()] for line in run.stdout.splitlines()], dtype=np.int8)


def expected(layers: list[FullyConnected], codes: np.ndarray) -> np.ndarray:
    x = codes
    for layer in layers:
        x = fully_connected.apply(layer, x)
    return x


def input_codes(inputs: int, rows: int, seed: int) -> np.ndarray:
    """Random rows, and the rows of all -128, all 127 and all 0 (the extremes of every sum)."""
    rng = np.random.default_rng(seed)
    extremes = np.array([[-128] * inputs, [127] * inputs, [0] * inputs], dtype=np.int8)
    return np.concatenate([extremes, rng.integers(-128, 128, size=(rows, inputs)).astype(np.int8)])


KINDS = {
    "per-tensor": dict(per_channel=False, left_shift=False, huge_bias=False, relu=False),
    "per-channel-relu": dict(per_channel=True, left_shift=False, huge_bias=False, relu=True),
    "left-shift": dict(per_channel=False, left_shift=True, huge_bias=False, relu=False),
    "left-shift-per-channel": dict(per_channel=True, left_shift=True, huge_bias=False, relu=True),
    "int32-limits": dict(per_channel=True, left_shift=False, huge_bias=True, relu=False),
}
SHAPES = {
    "neuron": (1, 1),
    "1-16-16-1": (1, 16, 16, 1),
    "every-remainder": (5, 6, 7, 8, 3, 2),
    "wide-714-50-15-5": (714, 50, 15, 5),
    "1024-3": (1024, 3),
}


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_simd_and_portable_paths_agree_with_the_reference(shape: str, kind: str, tmp_path: Path) -> None:
    layers = random_chain(len(shape) * 31 + len(kind), SHAPES[shape], **KINDS[kind])
    folder = model_dir(layers, tmp_path)
    codes = input_codes(SHAPES[shape][0], 200, seed=len(kind))
    want = expected(layers, codes)
    portable, simd = run_host(folder, codes, simd=False), run_host(folder, codes, simd=True)
    np.testing.assert_array_equal(simd, portable)
    np.testing.assert_array_equal(portable, want)


def test_the_random_layers_reach_the_cases_they_are_for() -> None:
    """Left shifts whose int32 product wraps (the reference's int64 product would differ), accumulators
    beyond int32, and outputs saturated at both ends: the agreement above covers them."""
    layer = random_chain(7, (16, 16), **KINDS["left-shift"])[0]
    codes = input_codes(16, 200, seed=1)
    acc = (codes.astype(np.int64) + layer.input_offset) @ layer.weights.astype(np.int64).T + layer.bias
    shifted = acc * (1 << layer.shifts[0])
    assert np.any((shifted > INT32_MAX) | (shifted < INT32_MIN))
    wide = random_chain(3, (714, 50), **KINDS["int32-limits"])[0]
    acc = (input_codes(714, 50, seed=2).astype(np.int64) + wide.input_offset) @ wide.weights.astype(np.int64).T
    total = acc + wide.bias
    assert np.any((total > INT32_MAX) | (total < INT32_MIN))
    out = expected([wide], input_codes(714, 50, seed=2))
    assert (out == -128).any() and (out == 127).any()


def test_weight_words_order_and_folded_bias() -> None:
    """Code 4g + k of a row in byte k of word g, a row's last word padded with zero weights; rows in
    fours, interleaved a word at a time, the rest after them; the input offset times the row's sum
    joins the bias, wrapped."""
    words = fully_connected.weight_words(np.array([[1, 2, 3, 4, 5, -6]], dtype=np.int8))
    assert [int(w) & 0xFFFFFFFF for w in words] == [0x04030201, 0xFA05]
    rows = np.arange(6 * 5).reshape(6, 5).astype(np.int8)  # row r, input i: 5r + i
    words = [int(w) & 0xFFFFFFFF for w in fully_connected.weight_words(rows)]
    word = lambda r, g: int.from_bytes(bytes([5 * r + i if i < 5 else 0 for i in range(4 * g, 4 * g + 4)]), "little")
    assert words == [word(r, g) for g in (0, 1) for r in range(4)] + [word(r, g) for r in (4, 5) for g in (0, 1)]
    assert fully_connected.groups(8) == 2 and fully_connected.groups(9) == 3
    layer = FullyConnected(np.array([[127, 127]], dtype=np.int8), np.array([INT32_MAX], dtype=np.int32), 128, 0,
                           (1 << 30,), (0,), -128, 127, False)
    assert fully_connected.folded_bias(layer).tolist() == [INT32_MIN + 128 * 254 - 1]


# ---- the SMLAD path on the Cortex-M4 itself (QEMU) -------------------------------------------------

QEMU_SHAPES = {"1-16-16-1": (1, 16, 16, 1), "every-remainder": (5, 6, 7, 8, 3, 2), "relu-13-9-4": (13, 9, 4),
               "looped-22-12-5": (22, 12, 5)}
"""At most about 25 inputs: a `q` line of codes stays within the protocol's 128 bytes. 22 inputs are
five groups of four and two: the M4 kernel's loop (two groups a turn), its odd group and its tail."""


def qemu_model_dir(layers: list[FullyConnected], folder: Path, name: str) -> Path:
    """The emitted files the QEMU image builds from, for layers the build never saw."""
    return write_model_folder(folder, chain_header(layers), ("FULLY_CONNECTED",) * len(layers),
                              int(layers[0].weights.shape[1]), int(layers[-1].weights.shape[0]),
                              -int(layers[0].input_offset) if -128 <= -layers[0].input_offset <= 127 else 0,
                              int(layers[-1].output_offset), any(layer.per_channel for layer in layers), name)


@pytest.mark.parametrize("shape", list(QEMU_SHAPES))
def test_qemu_smlad_path_agrees_with_the_reference(shape: str) -> None:
    from pipeline.device.serial_client import Device
    from pipeline.emulation import qemu
    from pipeline.emulation.emulate import emulated_device
    from pipeline.paths import BUILD_ROOT
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem() or qemu.qemu_problem())
    widths = QEMU_SHAPES[shape]
    kinds = [dict(KINDS["per-tensor"]), dict(KINDS["left-shift-per-channel"]), dict(KINDS["int32-limits"])]
    rng = np.random.default_rng(len(widths))
    layers = [random_layer(rng, n, m, **kinds[k % len(kinds)]) for k, (n, m) in enumerate(zip(widths, widths[1:]))]
    folder = qemu_model_dir(layers, BUILD_ROOT / "aot-kernels" / shape / "model", f"kernels-{shape}")
    codes = input_codes(widths[0], 300, seed=5)
    with emulated_device("qemu", model_dir=folder, build_dir=BUILD_ROOT / "aot-kernels" / shape / "qemu",
                         timeout=120.0) as port, Device(port, timeout=30) as device:
        answers = device.predict_codes_many(codes.tolist())
    np.testing.assert_array_equal(np.array(answers, dtype=np.int8), expected(layers, codes))


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_a_model_of_reshapes_only_copies_its_input(tmp_path: Path) -> None:
    """RESHAPEs give their output their input's bytes; a model of nothing else, whose output would be
    its input, copies it once (the last RESHAPE), and nothing else."""
    header = chain_header([reshape.Reshape(6), reshape.Reshape(6)])
    assert header.count("aot_reshape(&") == 1 and "its output is its input's bytes" in header
    assert "#define MODEL_AOT_ARENA_BYTES 0 " in header
    chained = chain_header([reshape.Reshape(6), *random_chain(1, (6, 3), **KINDS["per-tensor"])])
    assert "aot_reshape(" not in chained and "aot_fully_connected(&model_aot_op1, input, output);" in chained
    (tmp_path / "model_aot.h").write_text(header)
    (tmp_path / "model_info.h").write_text("#define MODEL_INPUT_COUNT 6\n#define MODEL_OUTPUT_COUNT 6\n")
    (tmp_path / "harness.c").write_text(HARNESS)
    (tmp_path / "acle_on_host.h").write_text(ACLE_ON_HOST)
    codes = input_codes(6, 20, seed=0)
    np.testing.assert_array_equal(run_host(tmp_path, codes, simd=False), codes)
