"""The integer reference against TFLM's own interpreter, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.int8 import oracle
from pipeline.int8 import fixedpoint, reference
from pipeline.int8.ops import fully_connected, lookup, reshape, softmax
from pipeline.int8 import tflite_model
import trained

needs_tflm = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")


def test_quantize_multiplier_matches_tflm_definition():
    assert fixedpoint.quantize_multiplier(0.0) == (0, 0)
    assert fixedpoint.quantize_multiplier(0.5) == (1 << 30, 0)
    assert fixedpoint.quantize_multiplier(1.0) == (1 << 30, 1)
    assert fixedpoint.quantize_multiplier(0.75) == (3 << 29, 0)
    q, shift = fixedpoint.quantize_multiplier(0.0123)
    assert abs(q * 2.0**shift / 2**31 - 0.0123) < 1e-9
    assert fixedpoint.quantize_multiplier(1e-12) == (0, 0)  # shift below -31 flushes to zero


def test_rounding_steps_match_tflm():
    # RoundingDivideByPOT: halves away from zero.
    assert fixedpoint.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == [3, -3, 3, -3, 4, -4]
    # SaturatingRoundingDoublingHighMul: nudge 2^30, or 1 - 2^30 below zero, then truncation,
    # so 1.5 -> 2 but -1.5 -> -1; and the one overflowing product saturates.
    assert fixedpoint.saturating_rounding_doubling_high_mul(np.array([-(2**31)]), -(2**31)).tolist() == [2**31 - 1]
    assert fixedpoint.saturating_rounding_doubling_high_mul(np.array([3, -3, 5, -5]), 1 << 30).tolist() == [2, -1, 3, -2]


@needs_tflm
@pytest.mark.parametrize("hidden", [(), (2,)], ids=["neuron", "two-layer"])
def test_seed_models_bit_exact_on_all_256_codes(hidden):
    model = trained.tflite(hidden)
    codes = trained.all_codes()
    expected = oracle.tflm_outputs(model, codes)
    actual = reference.run(tflite_model.read(model), codes)
    assert actual.dtype == np.int8
    np.testing.assert_array_equal(actual, expected)


@needs_tflm
@pytest.mark.parametrize("inputs,hidden,outputs,activation,per_channel", [
    (1, (16, 16), 1, "relu", False),
    (1, (16, 16), 1, "relu", True),
    (3, (8,), 2, "relu6", False),
    (3, (8,), 2, "relu6", True),
    (4, (32, 16), 3, "linear", True),
])
def test_random_models_bit_exact(inputs, hidden, outputs, activation, per_channel):
    model = trained.random_tflite(inputs, hidden, outputs, activation, per_channel)
    parsed = tflite_model.read(model)
    assert any(t.per_channel for t in parsed.tensors) == per_channel
    assert {op.activation for op in parsed.operators[:-1]} <= {"RELU" if activation == "relu" else
                                                              "RELU6" if activation == "relu6" else "NONE"}
    codes = trained.all_codes(inputs, count=512)
    np.testing.assert_array_equal(reference.run(parsed, codes), oracle.tflm_outputs(model, codes))


def test_unsupported_op_is_named():
    import keras
    from pipeline.model import quantize
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(4), keras.layers.LeakyReLU(),
                              keras.layers.Dense(1)])
    parsed = tflite_model.read(quantize.convert(model, (-1.0, 1.0)))
    with pytest.raises(reference.UnsupportedModelError, match=r"LEAKY_RELU.*TFLM engine"):
        reference.run(parsed, trained.all_codes())


def test_fixed_point_functions_at_known_points():
    """gemmlowp's exp, logistic, tanh and reciprocal: exact at their special points, and within 1e-6 of
    the real function elsewhere (the kernels' own accuracy; an int8 step is 1/256)."""
    q31 = 2.0**31
    assert fixedpoint.exp_on_negative_values(np.array([0]), 5).tolist() == [2**31 - 1]
    assert fixedpoint.fixed_logistic(np.array([0]), 4).tolist() == [2**30]
    assert fixedpoint.fixed_tanh(np.array([0]), 4).tolist() == [0]
    for bits in (4, 5):
        a = -np.arange(0, 2**(31 - bits + 3), 2**(31 - bits - 6))
        np.testing.assert_allclose(fixedpoint.exp_on_negative_values(a, bits) / q31,
                                   np.exp(a / 2.0**(31 - bits)), atol=1e-6)
    x = np.arange(-2**30, 2**30, 2**22)
    np.testing.assert_allclose(fixedpoint.fixed_logistic(x, 4) / q31, 1 / (1 + np.exp(-x / 2.0**27)), atol=1e-6)
    np.testing.assert_allclose(fixedpoint.fixed_tanh(x, 4) / q31, np.tanh(x / 2.0**27), atol=1e-6)
    np.testing.assert_array_equal(fixedpoint.fixed_tanh(-x, 4), -fixedpoint.fixed_tanh(x, 4))
    y = np.arange(0, 2**31 - 2**22, 2**22)
    np.testing.assert_allclose(fixedpoint.one_over_one_plus_x(y) / q31, 1 / (1 + y / q31), atol=1e-8)


@needs_tflm
def test_chains_with_logistic_tanh_and_softmax_bit_exact():
    for model in (trained.classifier_tflite(1, (8,), 3, "sigmoid"), trained.classifier_tflite(1, (8,), 4, "tanh")):
        parsed = tflite_model.read(model)
        assert [type(layer) for layer in reference.lower(parsed)] == [
            fully_connected.FullyConnected, lookup.Lookup, fully_connected.FullyConnected, softmax.Softmax]
        codes = trained.all_codes()
        np.testing.assert_array_equal(reference.run(parsed, codes), oracle.tflm_outputs(model, codes))


def test_softmax_prepare_matches_tflm_definition():
    """beta * scale * 2**26 as a multiplier above one; diff_min = -floor(31 * 2**26 / 2**shift)."""
    parsed = tflite_model.read(trained.activation_tflite("softmax", 4, (-3.0, 5.0)))
    layer, = reference.lower(parsed)
    real = float(parsed.input.scales[0]) * 2**26
    assert (layer.input_multiplier, layer.input_left_shift) == fixedpoint.quantize_multiplier(real)
    assert layer.diff_min == -((31 << 26) >> layer.input_left_shift)
    table = layer.exp_table
    assert table[0] == 2**31 - 1 and np.all(np.diff(table.astype(np.int64)) <= 0) and table[-1] > 0


def test_reads_everything_from_the_flatbuffer():
    parsed = tflite_model.read(trained.tflite())
    assert parsed.ops == ["FULLY_CONNECTED"]
    layer, = reference.lower(parsed)
    assert layer.weights.shape == (1, 1) and layer.bias.shape == (1,)
    assert layer.input_offset == -int(parsed.input.zero_points[0])
    assert layer.output_offset == int(parsed.output.zero_points[0])
    assert (layer.act_min, layer.act_max) == (-128, 127)


def test_not_a_flatbuffer_is_refused():
    with pytest.raises(tflite_model.ModelFormatError):
        tflite_model.read(b"not a model at all")


@needs_tflm
def test_runtime_and_board_multipliers_on_a_model_where_they_round_apart():
    """A FULLY_CONNECTED layer whose per-tensor multiplier rounds differently when the scales are
    multiplied in float (the board's TFLM, Chirale 2.0.0) or in double (the runtime): the reference
    follows the runtime bit for bit, computes the board's answers apart, and the build's expectation
    names those rows with the board's answers, one step off on each."""
    from pipeline.model import check, quantize
    flatbuffer, board = trained.board_rounding_tflite()
    parsed, codes = tflite_model.read(flatbuffer), check.seeded_sweep(4)
    runtime = oracle.tflm_outputs(flatbuffer, codes)
    np.testing.assert_array_equal(reference.run(parsed, codes), runtime)
    expected, warning = quantize.board_expectations(parsed, codes)
    assert set(expected) == set(board) and 0 < len(board) < 10
    for row, answer in expected.items():
        assert np.array_equal(answer, board[row])
        assert np.abs(answer.astype(int) - runtime[row].astype(int)).max() == 1
    assert warning is not None and f"on {len(board)} of {len(codes)} sweep rows" in warning
    assert "1 step(s) apart at most" in warning
    assert quantize.board_expectations(parsed, codes[[k for k in range(len(codes)) if k not in board]]) == ({}, None)


def _with_output_scale(model: bytes, factor: float) -> bytes:
    """The flatbuffer with its output tensor's scale multiplied by factor (its float32 bytes patched
    where they occur once): the same weights, another requantization multiplier."""
    parsed = tflite_model.read(model)
    old = np.float32(parsed.output.scales[0]).tobytes()
    assert model.count(old) == 1, "the output scale's bytes are not unique in this flatbuffer"
    return model.replace(old, np.float32(parsed.output.scales[0] * factor).tobytes())


@needs_tflm
@pytest.mark.parametrize("left_shift", [3, 17, 22])
def test_multiplier_above_one_shifts_left_in_int32_as_tflm(left_shift, tmp_path):
    """A multiplier of 1 or more (output scale below input scale times weight scale) makes TFLM
    compute acc * (1 << shift) in int32 before its high multiply: a product that leaves int32 wraps,
    and the wrapped value is what gets requantized. The reference and the AOT engine (native, UBSan)
    do the same; the old int64 product answers otherwise on some of these rows."""
    from test_aot import run_aot
    base = trained.random_tflite(4, (), 1, "linear", False)
    layer = reference.lower(tflite_model.read(base))[0]
    real = layer.multipliers[0] * 2.0 ** layer.shifts[0] / 2**31
    model = _with_output_scale(base, real / 2.0 ** (left_shift - 0.5))
    parsed = tflite_model.read(model)
    patched = reference.lower(parsed)[0]
    assert patched.shifts[0] == left_shift
    codes = trained.all_codes(4, count=4000)
    expected = oracle.tflm_outputs(model, codes)
    np.testing.assert_array_equal(reference.run(parsed, codes), expected)
    np.testing.assert_array_equal(run_aot(model, codes, tmp_path), expected)
    acc = (codes.astype(np.int64) + patched.input_offset) @ patched.weights.astype(np.int64).T + patched.bias
    shifted = acc * (1 << left_shift)
    wraps = (shifted > 2**31 - 1) | (shifted < -(2**31))
    if left_shift >= 12:  # the case is reached, and the int64 arithmetic would answer otherwise there
        assert wraps.any()
        unwrapped = fixedpoint.rounding_divide_by_pot(
            fixedpoint.saturating_rounding_doubling_high_mul(shifted, patched.multipliers[0]), 0)
        old = np.clip(unwrapped + patched.output_offset, patched.act_min, patched.act_max)
        assert np.any(old[wraps[:, 0]] != expected[wraps[:, 0]])


@needs_tflm
def test_flatten_is_a_reshape_the_reference_and_aot_compute(tmp_path):
    """Keras' Flatten converts to RESHAPE (same scale and zero point): a no-op on the int8 codes, so
    the reference and the AOT engine run the model, bit-exact with TFLM."""
    import keras
    from pipeline.model import load, quantize
    from test_aot import run_aot
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(shape=(3, 4)), keras.layers.Flatten(), keras.layers.Dense(5, activation="relu"),
                              keras.layers.Dense(2)])
    samples = np.random.default_rng(0).uniform(-3.0, 5.0, size=(200, 12))
    given = load.from_model(model, "test")
    tfl = quantize.convert(given.model, None, rows=samples, input_shape=given.input_shape)
    parsed = tflite_model.read(tfl)
    assert "RESHAPE" in parsed.ops
    codes = trained.all_codes(12, count=500)
    expected = oracle.tflm_outputs(tfl, codes)
    np.testing.assert_array_equal(reference.run(parsed, codes), expected)
    np.testing.assert_array_equal(run_aot(tfl, codes, tmp_path), expected)


def test_reshape_that_requantizes_is_refused_by_name():
    """A RESHAPE between tensors of different scales would requantize: refused, naming the op and the
    TFLM engine."""
    from pipeline.int8.tflite_model import Operator, Tensor, TfliteModel
    tensors = [Tensor(0, "in", (1, 2, 2), "INT8", np.array([0.1]), np.array([3]), None),
               Tensor(1, "out", (1, 4), "INT8", np.array([0.2]), np.array([3]), None)]
    model = TfliteModel(tensors, [Operator(0, "RESHAPE", (0,), (1,), "NONE")], (0,), (1,))
    with pytest.raises(reference.UnsupportedModelError, match=r"op 0 RESHAPE: .*TFLM engine"):
        reference.lower(model)
    same = TfliteModel([tensors[0], Tensor(1, "out", (1, 4), "INT8", np.array([0.1]), np.array([3]), None)],
                       model.operators, (0,), (1,))
    assert reference.lower(same) == [reshape.Reshape(4)]
