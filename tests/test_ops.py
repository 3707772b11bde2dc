"""LOGISTIC, TANH and SOFTMAX: the integer reference and the AOT engine (compiled with the firmware's
warnings as errors) against the tflite-micro runtime, bit for bit, on every input code of one input
and on random, tied and saturated logits of several."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.int8 import oracle
from pipeline.int8 import reference
from pipeline.int8.ops import softmax
from pipeline.int8 import tflite_model
from test_aot import CC, run_aot
from toolchains import tflm_root
import trained

pytestmark = [pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)"),
              pytest.mark.skipif(CC is None, reason="no C compiler")]


def assert_bit_exact(model: bytes, codes: np.ndarray, folder) -> np.ndarray:
    """Reference and AOT against the runtime; returns the runtime's answers."""
    expected = oracle.tflm_outputs(model, codes)
    actual = reference.run(tflite_model.read(model), codes)
    assert int(np.any(actual != expected, axis=1).sum()) == 0
    np.testing.assert_array_equal(actual, expected)
    aot = run_aot(model, codes, folder)
    assert int(np.any(aot != expected, axis=1).sum()) == 0
    np.testing.assert_array_equal(aot, expected)
    return expected


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("input_range", [(-0.5, 0.5), (-3.0, 5.0), (-8.0, 8.0), (-100.0, 100.0)],
                         ids=["narrow", "seed-like", "wide", "saturating"])
def test_lookup_op_on_every_input_code(activation, input_range, tmp_path):
    model = trained.activation_tflite(activation, 1, input_range)
    layer, = reference.lower(tflite_model.read(model))
    assert layer.op == {"sigmoid": "LOGISTIC", "tanh": "TANH"}[activation]
    expected = assert_bit_exact(model, trained.all_codes(), tmp_path)
    if input_range == (-100.0, 100.0):
        assert {-128, 127} <= set(expected.ravel().tolist())


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("gain", [0.2, 1.0, 8.0])
def test_dense_then_lookup_op_on_every_input_code(activation, gain, tmp_path):
    """Dense(1, sigmoid/tanh): FULLY_CONNECTED then the op, at input scales set by the weights."""
    model = trained.classifier_tflite(1, (), 1, output=activation, logit_gain=gain)
    assert tflite_model.read(model).ops == ["FULLY_CONNECTED", "LOGISTIC" if activation == "sigmoid" else "TANH"]
    assert_bit_exact(model, trained.all_codes(), tmp_path)


@pytest.mark.parametrize("classes", [2, 3, 4, 5])
@pytest.mark.parametrize("input_range", [(-0.1, 0.1), (-3.0, 5.0), (-100.0, 100.0)],
                         ids=["flat", "seed-like", "beyond-diff-min"])
def test_softmax_on_random_tied_and_saturated_logits(classes, input_range, tmp_path):
    model = trained.activation_tflite("softmax", classes, input_range)
    layer, = reference.lower(tflite_model.read(model))
    assert isinstance(layer, softmax.Softmax)
    if input_range == (-100.0, 100.0):
        assert layer.diff_min > -255  # some logit differences are left out of the sum
    codes = trained.logit_codes(classes, count=2000, seed=classes)
    expected = assert_bit_exact(model, codes, tmp_path)
    if input_range != (-0.1, 0.1):
        assert {-128, 127} <= set(expected.ravel().tolist())


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("hidden,activation", [((), "linear"), ((8,), "sigmoid"), ((8,), "tanh"),
                                               ((8, 4), "tanh")], ids=["dense", "sigmoid", "tanh", "tanh-2"])
def test_classifier_on_every_input_code(classes, hidden, activation, tmp_path):
    model = trained.classifier_tflite(1, hidden, classes, activation, seed=classes)
    ops = tflite_model.read(model).ops
    assert ops[-1] == "SOFTMAX" and (activation == "linear" or ops[1] in ("LOGISTIC", "TANH"))
    assert_bit_exact(model, trained.all_codes(), tmp_path)


@pytest.mark.parametrize("inputs,hidden,classes,activation,gain,tie", [
    (3, (8,), 4, "sigmoid", 1.0, False),
    (3, (16,), 5, "tanh", 1.0, False),
    (4, (8, 8), 3, "tanh", 1.0, True),
    (3, (8,), 5, "sigmoid", 60.0, False),
    (2, (), 3, "linear", 200.0, True),
], ids=["sigmoid", "tanh", "tanh-2-tied", "sigmoid-saturated", "dense-saturated-tied"])
def test_classifier_on_random_inputs(inputs, hidden, classes, activation, gain, tie, tmp_path):
    model = trained.classifier_tflite(inputs, hidden, classes, activation, logit_gain=gain, tie=tie)
    codes = trained.all_codes(inputs, count=3000, seed=inputs)
    expected = assert_bit_exact(model, codes, tmp_path)
    if tie:
        np.testing.assert_array_equal(expected[:, 0], expected[:, 1])
    if gain > 10:
        assert {-128, 127} <= set(expected.ravel().tolist())


def test_softmax_over_too_many_classes_is_refused():
    parsed = tflite_model.read(trained.activation_tflite("softmax", softmax.SOFTMAX_MAX_CLASSES + 1))
    with pytest.raises(reference.UnsupportedModelError, match=r"op 0 SOFTMAX: 512 classes, at most 511"):
        reference.lower(parsed)


BOARD_TREE_MODELS = {
    "softmax-logits": (lambda: trained.activation_tflite("softmax", 4), lambda: trained.logit_codes(4, count=500)),
    "softmax-beyond-diff-min": (lambda: trained.activation_tflite("softmax", 3, (-100.0, 100.0)),
                                lambda: trained.logit_codes(3, count=500)),
    "sigmoid": (lambda: trained.activation_tflite("sigmoid", 1, (-8.0, 8.0)), trained.all_codes),
    "tanh": (lambda: trained.activation_tflite("tanh", 1, (-3.0, 5.0)), trained.all_codes),
    "tanh-softmax-classifier": (lambda: trained.classifier_tflite(3, (8,), 5, "tanh"),
                                lambda: trained.all_codes(3, count=1000)),
}


@pytest.mark.emulation
@pytest.mark.skipif(tflm_root() is None, reason="no TFLM library tree: set TFLM_ROOT (see tests/test_tflm.py)")
@pytest.mark.parametrize("name", list(BOARD_TREE_MODELS))
def test_board_tflm_tree_computes_what_the_runtime_does(name, tmp_path):
    """The board's TFLM tree (CMSIS-NN's arm_softmax_s8, TFLM's reference LOGISTIC and TANH), built
    natively: every answer equals the runtime's. One build folder for all models, so the library is
    compiled once (many minutes) and each model only relinks."""
    from pipeline.device.serial_client import Device
    from pipeline.emit import sources as emit
    from pipeline.emulation.emulate import emulated_device
    from pipeline.paths import BUILD_ROOT
    make, make_codes = BOARD_TREE_MODELS[name]
    model, codes = make(), make_codes()
    parsed = tflite_model.read(model)
    facts = emit.facts(parsed, name, (-1.0, 1.0), oracle.arena_bytes(model), 4.0)
    for file, content in emit.sources(model, parsed, facts, {"codes": [], "float": []}).items():
        (tmp_path / file).write_bytes(content)
    with emulated_device("native", tflm_root=tflm_root(), model_dir=tmp_path, build_dir=BUILD_ROOT / "native-tflm-ops",
                         timeout=120.0) as port, Device(port, timeout=10) as device:
        answers = np.array(device.predict_codes_many(codes.tolist()), dtype=np.int8)
    expected = oracle.tflm_outputs(model, codes)
    assert int(np.any(answers != expected, axis=1).sum()) == 0
    np.testing.assert_array_equal(answers, expected)
