"""A residual block's last convolution fused with its ADD (pipeline/int8/fusion.py): the fused
kernel (aot_conv_2d_add) gives the codes the two ops give one after the other, on the host (the
portable and the DSP path, AddressSanitizer and UBSan) and on the Cortex-M4 under QEMU, with the sum
written over the skip; and fuse() takes only what it can run so.

The blocks are drawn here (integers, no TensorFlow): the skip as the ADD's first or second operand,
a stride-1 block (the skip is the block's input) and a strided one (the skip a 1x1 shortcut that
runs after the block's last convolution in the model's order, before it once fused).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.emit import aot
from pipeline.int8 import fusion, plan
from pipeline.int8.ops import add, conv_2d
from pipeline.int8.ops.add import Add
from pipeline.int8.reference import Step
from pipeline.int8.tflite_model import Operator, Tensor
from aot_harness import CC, HARNESS, write_model_folder
from test_aot_conv_kernels import input_codes, random_conv
from test_aot_kernels import ACLE_ON_HOST, run_host


def random_add(seed: int, shape: tuple[int, ...], relu: bool = True) -> Add:
    """An ADD of two operands of one shape, its multipliers in the ranges TFLM's prepare gives them."""
    rng = np.random.default_rng(seed)
    output_offset = int(rng.integers(-100, 100))
    return Add(add.Operands((0, 1), (shape, shape), shape), (int(rng.integers(-127, 129)), int(rng.integers(-127, 129))),
               (int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(1 << 30, 1 << 31))),
               (-1, -int(rng.integers(1, 3))), int(rng.integers(1 << 30, 1 << 31)), -int(rng.integers(20, 22)),
               output_offset, max(-128, output_offset) if relu else -128, 127)


def block(strided: bool, conv_first: bool) -> tuple[list[Step], list[tuple[int, ...]]]:
    """Tensor 0 (6x8x4) -> a stem -> a residual block -> a 1x1 convolution (the model's output):
    the steps in the model's order and each tensor's shape."""
    small = (3, 8) if strided else (6, 8)
    layers = [("CONV_2D", random_conv(81, (6, 8), 4, 8), (0,)),
              ("CONV_2D", random_conv(82, (6, 8), 8, 8, stride=(2, 1) if strided else (1, 1)), (1,)),
              ("CONV_2D", random_conv(83, small, 8, 8), (2,))]
    skip = 1
    if strided:
        layers.append(("CONV_2D", random_conv(84, (6, 8), 8, 8, kernel=(1, 1), stride=(2, 1), padding="VALID"), (1,)))
        skip = 4
    shape = (1, *small, 8)
    operands = (3, skip) if conv_first else (skip, 3)
    layers.append(("ADD", random_add(87, shape[1:]), operands))
    layers.append(("CONV_2D", random_conv(87, small, 8, 6, kernel=(1, 1)), (len(layers),)))
    shapes = [(1, 6, 8, 4), (1, 6, 8, 8), (1, *small, 8), (1, *small, 8)] + ([(1, *small, 8)] if strided else [])
    shapes += [shape, (1, *small, 6)]
    steps = [Step(Operator(k, op, inputs, (k + 1,), "NONE"), layer, inputs, k + 1)
             for k, (op, layer, inputs) in enumerate(layers)]
    return steps, shapes


def reference(steps: list[Step], shapes: list[tuple[int, ...]], codes: np.ndarray) -> np.ndarray:
    """The steps one after the other, unfused, as the integer reference runs a model."""
    tensors: dict[int, Any] = {0: codes.reshape(len(codes), *shapes[0][1:])}
    for step in steps:
        y = step.unit.apply(step.layer, *(tensors[i] for i in step.inputs))
        tensors[step.output] = np.asarray(y, dtype=np.int8).reshape(len(codes), *shapes[step.output][1:])
    return tensors[len(shapes) - 1].reshape(len(codes), -1)


def header(steps: list[Step], shapes: list[tuple[int, ...]]) -> str:
    tensors = [Tensor(k, f"t{k}", shape, "INT8", np.array([1.0]), np.array([0]), None) for k, shape in enumerate(shapes)]
    return aot.emit(steps, tensors, 0, len(shapes) - 1)


CASES = {f"{'strided' if strided else 'stride-1'}-{'conv-first' if first else 'skip-first'}": (strided, first)
         for strided in (False, True) for first in (True, False)}


@pytest.mark.parametrize("case", list(CASES))
def test_the_block_runs_fused_with_the_sum_over_the_skip(case: str) -> None:
    steps, shapes = block(*CASES[case])
    text = header(steps, shapes)
    calls = re.findall(r"aot_conv_2d_add\(&\w+, (\S+(?: \+ \d+)?), (\S+(?: \+ \d+)?), \S+(?: \+ \d+)?, "
                       r"(\S+(?: \+ \d+)?)\);", text)
    assert len(calls) == 1 and calls[0][1] == calls[0][2], calls  # one fused step, written over the skip
    assert text.count("aot_add(") == 0 and text.count("aot_conv_2d(") == len(steps) - 2
    fused = fusion.fuse(steps, len(shapes) - 1)
    assert [s.op.op for s in fused] == ["CONV_2D"] * (len(steps) - 1)
    if CASES[case][0]:  # the shortcut now runs before the block's last convolution
        assert [s.op.index for s in fused] == [0, 1, 3, 2, 5]


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("case", list(CASES))
def test_fused_paths_agree_with_the_ops_run_apart(case: str, tmp_path: Path) -> None:
    steps, shapes = block(*CASES[case])
    (tmp_path / "model_aot.h").write_text(header(steps, shapes))
    (tmp_path / "model_info.h").write_text(f"#define MODEL_INPUT_COUNT {int(np.prod(shapes[0]))}\n"
                                           f"#define MODEL_OUTPUT_COUNT {int(np.prod(shapes[-1]))}\n")
    (tmp_path / "harness.c").write_text(HARNESS)
    (tmp_path / "acle_on_host.h").write_text(ACLE_ON_HOST)
    codes = input_codes(int(np.prod(shapes[0])), 40, seed=len(case))
    want = reference(steps, shapes, codes)
    assert len(np.unique(want)) > 20  # answers spread over the codes: a wrong sum shows
    np.testing.assert_array_equal(run_host(tmp_path, codes, simd=False), want)
    np.testing.assert_array_equal(run_host(tmp_path, codes, simd=True), want)


def test_fuse_takes_only_what_it_can_run_as_one() -> None:
    """Not fused: a convolution whose output a second op reads, or that is the model's output; an ADD
    whose skip is the convolution's own input (y = conv(x) + x: the sum would overwrite taps the
    convolution still reads) or that broadcasts."""
    steps, shapes = block(False, True)
    adding = steps[3]
    two_readers = steps[:4] + [Step(Operator(4, "CONV_2D", (3,), (5,), "NONE"), steps[4].layer, (3,), 5)]
    assert [s.op.op for s in fusion.fuse(two_readers, 5)] == ["CONV_2D", "CONV_2D", "CONV_2D", "ADD", "CONV_2D"]
    assert [s.op.op for s in fusion.fuse(steps[:3], 3)] == ["CONV_2D"] * 3
    own_input = Step(adding.op, adding.layer, (3, 2), 4)
    assert [s.op.op for s in fusion.fuse([*steps[:3], own_input], 4)] == ["CONV_2D", "CONV_2D", "CONV_2D", "ADD"]
    wide = add.Operands((0, 1), ((6, 8, 8), (1, 1, 8)), (6, 8, 8))
    broadcast = Step(adding.op, dataclasses.replace(adding.layer, operands=wide), adding.inputs, 4)
    assert [s.op.op for s in fusion.fuse([*steps[:3], broadcast], 4)][-1] == "ADD"


def test_the_plan_keeps_two_block_tensors_where_it_kept_three() -> None:
    """The stride-1 block's peak: its input and the middle convolution's output and the scratch, not
    also the last convolution's output."""
    steps, shapes = block(False, True)
    sizes = {k: int(np.prod(shape)) for k, shape in enumerate(shapes)}
    apart = plan.plan(steps, sizes, 0, len(shapes) - 1)
    fused = plan.plan(fusion.fuse(steps, len(shapes) - 1), sizes, 0, len(shapes) - 1)
    scratch = conv_2d.scratch_bytes(steps[2].layer)
    assert apart.live_bytes == 3 * 6 * 8 * 8 + scratch
    assert fused.live_bytes == 2 * 6 * 8 * 8 + scratch


@pytest.mark.parametrize("case", ["stride-1-conv-first", "strided-skip-first"])
def test_qemu_fused_block_agrees_with_the_ops_run_apart(case: str) -> None:
    from pipeline.device.serial_client import Device
    from pipeline.emulation import qemu
    from pipeline.emulation.emulate import emulated_device
    from pipeline.paths import BUILD_ROOT
    if qemu.toolchain_problem() or qemu.qemu_problem():
        pytest.skip(qemu.toolchain_problem() or qemu.qemu_problem())
    steps, shapes = block(*CASES[case])
    folder = write_model_folder(BUILD_ROOT / "aot-fusion" / case / "model", header(steps, shapes),
                                [s.op.op for s in steps], int(np.prod(shapes[0])), int(np.prod(shapes[-1])),
                                -int(steps[0].layer.input_offset), int(steps[-1].layer.output_offset), True,
                                f"fusion-{case}")
    codes = input_codes(int(np.prod(shapes[0])), 60, seed=4)
    with emulated_device("qemu", model_dir=folder, build_dir=BUILD_ROOT / "aot-fusion" / case / "qemu",
                         timeout=120.0) as port, Device(port, timeout=60) as device:
        answers = device.predict_codes_many(codes.tolist())
    np.testing.assert_array_equal(np.array(answers, dtype=np.int8), reference(steps, shapes, codes))
