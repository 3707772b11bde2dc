"""AVERAGE_POOL_2D and MAX_POOL_2D: the integer reference against the tflite-micro runtime, bit for
bit, over odd sizes, SAME padding (windows of fewer taps at the edges) and VALID, strides, fused
activations and zero points at the extremes."""
from __future__ import annotations

import pytest

import op_models
from pipeline.int8 import oracle, ops, tflite_model

pytestmark = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")

CASES = {
    "2x2-stride2-valid": dict(height=8, width=6, depth=3, filter_size=(2, 2), stride=(2, 2), padding="VALID"),
    "3x3-stride2-same-odd": dict(height=7, width=9, depth=2, filter_size=(3, 3), stride=(2, 2), padding="SAME"),
    "3x3-stride1-same": dict(height=5, width=5, depth=4, filter_size=(3, 3), stride=(1, 1), padding="SAME"),
    "global-5x4": dict(height=5, width=4, depth=8, filter_size=(5, 4), stride=(1, 1), padding="VALID"),
    "1x3-conv1d-shape": dict(height=1, width=20, depth=5, filter_size=(1, 3), stride=(1, 2), padding="VALID"),
    "relu6": dict(height=6, width=6, depth=3, filter_size=(2, 2), stride=(2, 2), padding="VALID", activation="RELU6"),
    "zero-point-127": dict(height=6, width=5, depth=2, filter_size=(3, 2), stride=(1, 2), padding="SAME", zp=127),
    "zero-point-128": dict(height=6, width=5, depth=2, filter_size=(3, 2), stride=(2, 1), padding="SAME", zp=-128),
}


@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("name", list(CASES))
def test_pool(kind, name, tmp_path):
    model = op_models.pool(kind, len(name), **CASES[name])
    op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert tflite_model.read(model).ops == [kind]


def test_pooling_macs_are_window_taps():
    model = tflite_model.read(op_models.pool("AVERAGE_POOL_2D", 1, 8, 6, 3, (2, 2), (2, 2), "VALID"))
    assert ops.macs(model) == 4 * 3 * 3 * 4
