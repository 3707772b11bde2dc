"""ADD and MUL: the integer reference against the tflite-micro runtime, bit for bit, with both inputs
rescaled (scales far apart too), broadcasting as TFLite allows it, a constant operand, fused
activations and zero points at the extremes."""
from __future__ import annotations

import math

import pytest

import op_models
from pipeline.int8 import oracle, ops, tflite_model

pytestmark = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")

CASES = {
    "same-shape": dict(shape=(1, 4, 5, 3)),
    "channel-broadcast": dict(shape=(1, 4, 3, 6), second="pixel"),
    "row-broadcast": dict(shape=(1, 5, 4, 2), second="rows"),
    "lower-rank-constant": dict(shape=(1, 3, 4, 5), second="constant", constant_shape=(5,)),
    "constant-channels": dict(shape=(1, 4, 4, 3), second="constant", constant_shape=(1, 1, 1, 3)),
    "scales-far-apart": dict(shape=(1, 6, 4, 2), scale_ratio=40.0),
    "relu": dict(shape=(1, 3, 3, 4), activation="RELU"),
    "relu6": dict(shape=(1, 2, 6, 2), activation="RELU6"),
}
ZERO_POINTS = {  # at the extremes, where the output still spans codes (a MUL of operands of one sign cannot)
    "ADD": [(-128, 127, 0), (-128, -128, -128), (127, 127, 127)],
    "MUL": [(-128, 127, 127), (-128, -128, -128), (127, 127, -128)],
}


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize("name", list(CASES))
def test_elementwise(kind, name, tmp_path):
    model = op_models.elementwise(kind, len(name), **CASES[name])
    parsed = tflite_model.read(model)
    expected = op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert parsed.ops[-1] == kind and len(set(expected.ravel().tolist())) > 3
    assert ops.macs_by_op(parsed)[kind] == math.prod(parsed.output.shape)


@pytest.mark.parametrize("kind", ["ADD", "MUL"])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_elementwise_zero_points_at_the_extremes(kind, which, tmp_path):
    model = op_models.elementwise(kind, 40 + which, (1, 2, 5, 2), zps=ZERO_POINTS[kind][which])
    expected = op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert len(set(expected.ravel().tolist())) > 3
