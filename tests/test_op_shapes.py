"""MEAN, PAD, CONCATENATION and what Keras' Conv1D lowers to (EXPAND_DIMS and RESHAPE around a
CONV_2D): the integer reference against the tflite-micro runtime, bit for bit. MEAN is also computed
as the board's older library computes it, which differs: there the reference gives the board's own
answers (board=True) and the build ships them for verify."""
from __future__ import annotations

import numpy as np
import pytest

import op_models
import tflite_writer as w
from pipeline.int8 import oracle, reference, tflite_model

pytestmark = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")


def mean_model(seed: int, shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool, same_quantization: bool,
               zero_point: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    scale, zp = float(np.float32(rng.uniform(0.01, 0.1))), op_models.zero_point(rng, zero_point)
    out_scale = scale if same_quantization else float(np.float32(scale * rng.uniform(0.3, 0.9)))
    # the mean of random codes is near -0.5: put it near output code 0, so the answers spread both ways
    out_zp = zp if same_quantization else int(np.clip(round((zp + 0.5) * scale / out_scale), -128, 127))
    out_shape = tuple(1 if a in axes else d for a, d in enumerate(shape)) if keep_dims else \
        tuple(d for a, d in enumerate(shape) if a not in axes)
    return w.write([w.tensor("input", shape, scale, zp),
                    w.tensor("axes", (len(axes),), None, 0, np.array(axes), "INT32"),
                    w.tensor("mean", out_shape, out_scale, out_zp)],
                   [w.mean(0, 1, 2, keep_dims)], [0], [2])


MEAN_CASES = {
    "global-hw-keep": dict(shape=(1, 5, 4, 6), axes=(1, 2), keep_dims=True, same_quantization=False),
    "global-hw": dict(shape=(1, 7, 3, 5), axes=(1, 2), keep_dims=False, same_quantization=False),
    "global-hw-same-quantization": dict(shape=(1, 4, 4, 3), axes=(1, 2), keep_dims=False, same_quantization=True),
    "conv1d-time-axis": dict(shape=(1, 1, 15, 8), axes=(2,), keep_dims=False, same_quantization=False),
    "zero-point-127": dict(shape=(1, 6, 5, 2), axes=(1, 2), keep_dims=True, same_quantization=False, zero_point=127),
    "zero-point-128": dict(shape=(1, 6, 5, 2), axes=(1, 2), keep_dims=True, same_quantization=True, zero_point=-128),
}


@pytest.mark.parametrize("name", list(MEAN_CASES))
def test_mean(name, tmp_path):
    model = mean_model(len(name), **MEAN_CASES[name])
    codes = op_models.rows(model, count=200)
    expected = op_models.assert_reference_matches_runtime(model, codes, tmp_path)
    assert len(np.unique(expected)) > 3
    board = reference.run(tflite_model.read(model), codes, board=True)
    assert board.shape == expected.shape  # the board's arithmetic, for the TFLM engine's expectations


def test_mean_on_the_board_truncates_where_the_runtime_rounds():
    """The board's library divides the sum by the count, truncating, when the output keeps the input's
    quantization; the runtime rounds: they part on a known row, and the reference knows both."""
    model = mean_model(7, (1, 2, 2, 1), (1, 2), keep_dims=False, same_quantization=True, zero_point=0)
    codes = np.array([[1, 1, 1, 0]], dtype=np.int8)  # sum 3 over 4: the runtime's mean rounds to 1, C's division to 0
    parsed = tflite_model.read(model)
    assert oracle.tflm_outputs(model, codes).tolist() == reference.run(parsed, codes).tolist() == [[1]]
    assert reference.run(parsed, codes, board=True).tolist() == [[0]]


def test_pad(tmp_path):
    rng = np.random.default_rng(5)
    scale, zp = 0.05, int(rng.integers(-100, 100))
    paddings = np.array([[0, 0], [1, 2], [2, 1], [0, 0]])
    model = w.write([w.tensor("input", (1, 3, 4, 2), scale, zp),
                     w.tensor("paddings", (4, 2), None, 0, paddings, "INT32"),
                     w.tensor("padded", (1, 6, 7, 2), scale, zp)], [w.pad(0, 1, 2)], [0], [2])
    expected = op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert np.all(expected.reshape(-1, 6, 7, 2)[:, 0] == zp)  # the border holds the zero point


@pytest.mark.parametrize("axis", [3, 2, -1])
def test_concatenation(axis, tmp_path):
    """The input beside a depthwise convolution of it, in one quantization (TFLM's int8 kernel takes no other)."""
    rng = np.random.default_rng(axis + 10)
    scale, zp = 0.05, int(rng.integers(-100, 100))
    out_shape = (1, 4, 5, 6) if axis % 4 == 3 else (1, 4, 10, 3)
    model = w.write([w.tensor("input", (1, 4, 5, 3), scale, zp),
                     w.tensor("dw/weights", (1, 1, 1, 3), 0.01, 0, rng.integers(-127, 128, (1, 1, 1, 3))),
                     w.tensor("dw/bias", (3,), scale * 0.01, 0, rng.integers(-50, 50, 3), "INT32"),
                     w.tensor("dw", (1, 4, 5, 3), scale, zp),
                     w.tensor("joined", out_shape, scale, zp)],
                    [w.depthwise_conv_2d(0, 1, 2, 3, 1), w.concatenation([0, 3], 4, axis)], [0], [4])
    op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)


def test_conv1d_lowering(tmp_path):
    """[1, 20, 3] -> EXPAND_DIMS -> [1, 1, 20, 3] -> CONV_2D 1x5 -> [1, 1, 16, 4] -> RESHAPE -> [1, 64]."""
    rng = np.random.default_rng(8)
    model = w.write([w.tensor("window", (1, 20, 3), 0.04, -5),
                     w.tensor("axis", (1,), None, 0, np.array([1]), "INT32"),
                     w.tensor("expanded", (1, 1, 20, 3), 0.04, -5),
                     w.tensor("conv/weights", (4, 1, 5, 3), [0.01, 0.02, 0.015, 0.012], 0,
                              rng.integers(-127, 128, (4, 1, 5, 3))),
                     w.tensor("conv/bias", (4,), [0.0004, 0.0008, 0.0006, 0.00048], 0, rng.integers(-999, 999, 4),
                              "INT32"),
                     w.tensor("conv", (1, 1, 16, 4), 0.3, 10),
                     w.tensor("shape", (2,), None, 0, np.array([1, 64]), "INT32"),
                     w.tensor("flat", (1, 64), 0.3, 10)],
                    [w.expand_dims(0, 1, 2), w.conv_2d(2, 3, 4, 5, "VALID"), w.reshape(5, 6, 7)], [0], [7])
    parsed = tflite_model.read(model)
    assert parsed.ops == ["EXPAND_DIMS", "CONV_2D", "RESHAPE"]
    expected = op_models.assert_reference_matches_runtime(model, op_models.rows(model), tmp_path)
    assert len(np.unique(expected)) > 20
