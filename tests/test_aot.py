"""The AOT engine (firmware/engines/engine_aot.c) over each model's emitted tables, compiled with
the host's C compiler and the firmware's warnings as errors, against TFLM bit for bit."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.emit import sources as emit
from pipeline.int8 import oracle
from pipeline.int8 import reference
from pipeline.int8 import tflite_model
import trained
from aot_harness import CC, FIRMWARE, HARNESS, WARNINGS

def run_aot(model: bytes, codes: np.ndarray, folder: Path) -> np.ndarray:
    parsed = tflite_model.read(model)
    facts = emit.facts(parsed, "test", (-1.0, 1.0), 0, 4.0)
    for name, content in emit.sources(model, parsed, facts, {"codes": [], "float": []}).items():
        (folder / name).write_bytes(content)
    (folder / "harness.c").write_text(HARNESS)
    exe = folder / "aot"
    built = subprocess.run([CC, "-std=c99", "-O2", *WARNINGS, "-fsanitize=undefined", "-fno-sanitize-recover",
                            "-I", str(folder), "-I", str(FIRMWARE / "core"), "-I", str(FIRMWARE / "engines"), str(FIRMWARE / "engines" / "engine_aot.c"),
                            str(folder / "harness.c"), "-o", str(exe)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    text = "\n".join(" ".join(str(int(c)) for c in row) for row in codes) + "\n"
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
    return np.array([[int(v) for v in line.split()] for line in out.splitlines()], dtype=np.int8)


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("make", [
    lambda: trained.tflite(),
    lambda: trained.tflite((2,)),
    lambda: trained.random_tflite(1, (16, 16), 1, "relu", False),
    lambda: trained.random_tflite(1, (16, 16), 1, "relu", True),
    lambda: trained.random_tflite(3, (8,), 2, "relu6", True),
], ids=["neuron", "two-layer", "relu-16x16", "relu-16x16-per-channel", "3in-2out-relu6-per-channel"])
def test_aot_matches_oracle(make, tmp_path):
    model = make()
    parsed = tflite_model.read(model)
    codes = trained.all_codes(len(parsed.input.shape) and parsed.input.shape[-1], count=512)
    expected, _ = oracle.int8_outputs(model, codes)
    np.testing.assert_array_equal(run_aot(model, codes, tmp_path), expected)
    np.testing.assert_array_equal(reference.run(parsed, codes), expected)


def test_aot_refuses_unsupported_op_naming_it():
    import keras
    from pipeline.model import quantize
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(3), keras.layers.LeakyReLU(),
                              keras.layers.Dense(1)])
    tfl = quantize.convert(model, (-1.0, 1.0))
    parsed = tflite_model.read(tfl)
    with pytest.raises(reference.UnsupportedModelError, match="LEAKY_RELU"):
        emit.sources(tfl, parsed, emit.facts(parsed, "x", (-1.0, 1.0), 0, 4.0), {})


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("make", [
    lambda: trained.classifier_tflite(1, (), 3),
    lambda: trained.classifier_tflite(1, (8,), 4, "sigmoid"),
    lambda: trained.classifier_tflite(3, (8,), 5, "tanh"),
    lambda: trained.activation_tflite("softmax", 4),
    lambda: trained.activation_tflite("tanh"),
], ids=["dense-softmax", "sigmoid-softmax", "3in-tanh-softmax", "softmax-alone", "tanh-alone"])
def test_aot_matches_oracle_with_logistic_tanh_softmax(make, tmp_path):
    model = make()
    parsed = tflite_model.read(model)
    codes = trained.all_codes(parsed.input.shape[-1], count=1000)
    expected, _ = oracle.int8_outputs(model, codes)
    np.testing.assert_array_equal(run_aot(model, codes, tmp_path), expected)


def test_header_includes_its_kernels_and_plans_its_tensors():
    """model_aot.h includes the kernels of the model's ops only, and the plan puts its tensors in the
    arena: the two-layer model's 2 hidden values in 4 bytes; the tanh classifier's TANH over its own
    input (in place), then the dense layer beside it, the softmax into the caller's output."""
    from pipeline.emit import aot
    plain = aot.header(tflite_model.read(trained.tflite((2,))))
    assert '#include "aot/fully_connected.h"\n\n' in plain and "aot/lookup.h" not in plain
    assert "#define MODEL_AOT_ARENA_BYTES 4 " in plain
    assert "aot_fully_connected(&model_aot_op0, input, arena + 0);" in plain
    assert "aot_fully_connected(&model_aot_op1, arena + 0, output);" in plain
    mixed = aot.header(tflite_model.read(trained.classifier_tflite(1, (8,), 3, "tanh")))
    for kernel in ("fully_connected", "lookup", "softmax"):
        assert f'#include "aot/{kernel}.h"' in mixed
    assert "aot_lookup(&model_aot_op1, arena + 0, arena + 0);" in mixed
    assert "aot_fully_connected(&model_aot_op2, arena + 0, arena + 8);" in mixed
    assert "aot_softmax(&model_aot_op3, arena + 8, output);" in mixed
    assert "#define MODEL_AOT_ARENA_BYTES 12 " in mixed
