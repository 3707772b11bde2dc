"""CONV_2D and DEPTHWISE_CONV_2D: the integer reference against the tflite-micro runtime, bit for bit,
on one-op models over the parameter space: odd sizes, every padding, strides and dilations, fused
ReLU and ReLU6, per-channel and per-tensor weights, zero points at -128 and 127, saturating outputs."""
from __future__ import annotations

import numpy as np
import pytest

import op_models
from pipeline.int8 import oracle, ops, tflite_model

pytestmark = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")

CONV_CASES = {
    "3x3-same": dict(height=7, width=5, depth=3, channels=4),
    "3x3-valid": dict(height=7, width=5, depth=3, channels=4, padding="VALID"),
    "1x1": dict(height=6, width=6, depth=8, channels=5, kernel=(1, 1)),
    "5x3-stride2-same": dict(height=9, width=8, depth=2, channels=3, kernel=(5, 3), stride=(2, 2)),
    "stride3-valid": dict(height=10, width=11, depth=3, channels=2, kernel=(3, 3), stride=(3, 2), padding="VALID"),
    "dilation2-same": dict(height=9, width=9, depth=2, channels=3, dilation=(2, 2)),
    "dilation-1x2-valid": dict(height=6, width=9, depth=3, channels=2, kernel=(2, 3), dilation=(1, 2), padding="VALID"),
    "conv1d-shape": dict(height=1, width=19, depth=6, channels=8, kernel=(1, 5), padding="VALID"),
    "even-kernel-same": dict(height=6, width=7, depth=2, channels=3, kernel=(4, 2), stride=(2, 1)),
    "relu": dict(height=5, width=5, depth=3, channels=4, activation="RELU"),
    "relu6": dict(height=5, width=5, depth=3, channels=4, activation="RELU6"),
    "per-tensor": dict(height=6, width=5, depth=4, channels=3, per_channel=False),
    "zero-points-128": dict(height=5, width=4, depth=3, channels=3, input_zp=-128, output_zp=-128),
    "zero-points-127": dict(height=5, width=4, depth=3, channels=3, input_zp=127, output_zp=127),
    "saturating": dict(height=6, width=6, depth=5, channels=4, saturate=True),
    "one-pixel": dict(height=1, width=1, depth=7, channels=3, kernel=(1, 1)),
    "kernel-as-input": dict(height=3, width=3, depth=2, channels=2, kernel=(3, 3), padding="VALID"),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv_2d(name, tmp_path):
    model = op_models.conv(len(name), **CONV_CASES[name])
    expected = op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    if "saturating" in name:
        assert {-128, 127} <= set(np.unique(expected).tolist())
    parsed = tflite_model.read(model)
    assert parsed.ops == ["CONV_2D"]


DEPTHWISE_CASES = {
    "3x3-same": dict(height=7, width=6, depth=4, channels=4),
    "3x3-valid-stride2": dict(height=9, width=7, depth=3, channels=3, stride=(2, 2), padding="VALID"),
    "multiplier-2": dict(height=5, width=5, depth=3, channels=6),
    "multiplier-3-valid": dict(height=6, width=5, depth=2, channels=6, padding="VALID"),
    "10x8-stride2": dict(height=12, width=10, depth=1, channels=8, kernel=(10, 8), stride=(2, 2)),
    "dilation2": dict(height=9, width=8, depth=3, channels=3, dilation=(2, 2)),
    "relu6-per-tensor": dict(height=6, width=6, depth=4, channels=4, activation="RELU6", per_channel=False),
    "zero-points-extreme": dict(height=5, width=5, depth=2, channels=2, input_zp=127, output_zp=-128),
    "saturating": dict(height=6, width=6, depth=4, channels=4, saturate=True),
}


@pytest.mark.parametrize("name", list(DEPTHWISE_CASES))
def test_depthwise_conv_2d(name, tmp_path):
    model = op_models.conv(100 + len(name), depthwise=True, **DEPTHWISE_CASES[name])
    op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert tflite_model.read(model).ops == ["DEPTHWISE_CONV_2D"]


def test_macs_are_the_weights_applied():
    model = tflite_model.read(op_models.conv(1, 7, 5, 3, 4, kernel=(3, 2), stride=(2, 1)))
    assert ops.macs(model) == 4 * 5 * 4 * (3 * 2 * 3)  # output 4x5x4, each a 3x2 window of 3 channels
    depthwise = tflite_model.read(op_models.conv(1, 6, 6, 2, 4, depthwise=True, padding="VALID"))
    assert ops.macs(depthwise) == 4 * 4 * 4 * 9
