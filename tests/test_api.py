"""pipeline.api: a Keras model object or .tflite bytes and arrays in, the build's own stages, the
device side without TensorFlow; the README's notebook example runs as written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import toolchains
from pipeline import api

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parent.parent


def line_model() -> "keras.Model":
    """y = 2x - 1 from fixed weights: the same model on every machine."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.layers[0].set_weights([np.array([[2.0]], np.float32), np.array([-1.0], np.float32)])
    return model


def test_a_keras_object_is_deployed_as_the_command_line_deploys_its_file(tmp_path):
    x = np.linspace(-1, 4, 64, dtype=np.float32).reshape(-1, 1)
    model = line_model()
    built = api.deploy(model, x, out=tmp_path / "api" / "model")
    assert built.check["mismatches"] == 0 and built.check["errors"]["max_lsb"] <= 4
    assert [p.name for p in built.files] == ["model.json", "model.tflite", "model_aot.h", "model_data.cpp",
                                              "model_data.h", "model_info.h", "report.json", "report.md"]
    assert built.tflite == (tmp_path / "api" / "model" / "model.tflite").read_bytes()
    model.save(tmp_path / "model.keras")  # the name the API gives its file: tensor names carry it
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.9g")
    from pipeline import build
    assert build.main(["-q", "--no-footprint", "--keras", str(tmp_path / "model.keras"), "--data", str(tmp_path / "x.csv"),
                       "--out", str(tmp_path / "cli" / "model"), "--report-dir", str(tmp_path / "cli" / "report")]) == 0
    # The same int8 model (tensor names differ: Keras numbers its tensors per process).
    from pipeline.int8 import oracle, tflite_model
    cli = (tmp_path / "cli" / "model" / "model.tflite").read_bytes()
    ours, theirs = tflite_model.read(built.tflite), tflite_model.read(cli)
    assert (ours.input.scales, ours.output.scales) == (theirs.input.scales, theirs.output.scales)
    codes = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    assert np.array_equal(oracle.tflm_outputs(built.tflite, codes), oracle.tflm_outputs(cli, codes))


def test_tflite_bytes_and_refusals(tmp_path):
    import tflite_writer as w
    model = w.write([w.tensor("x", (1, 4), 0.05, 0),
                     w.tensor("weights", (2, 4), 0.01, 0, np.arange(-4, 4).reshape(2, 4)),
                     w.tensor("bias", (2,), 0.0005, 0, np.array([10, -10]), "INT32"), w.tensor("y", (1, 2), 0.02, 3)],
                    [w.fully_connected(0, 1, 2, 3)], [0], [3])
    built = api.deploy(model, out=tmp_path / "m", engine="aot")
    assert built.tflite == model and built.check["mismatches"] == 0
    with pytest.raises(api.ApiError, match="model: a Keras model, .tflite bytes or a path to either, not int"):
        api.deploy(7, out=tmp_path / "n")
    with pytest.raises(api.ApiError, match="give one of emulate"):
        built.verify(emulate=None)


@pytest.mark.skipif(toolchains.native_problem() is not None, reason=toolchains.native_problem() or "")
def test_the_device_side_needs_no_tensorflow():
    """verify and predict on the committed model folder, in a fresh interpreter: TensorFlow is never
    imported."""
    script = ("import sys\nfrom pipeline import api\n"
              "d = api.Deployment(api.Path('firmware/model'), api.Path('build/report'), {})\n"
              "assert d.verify(emulate='native').ok\n"
              "print(d.predict([[10.0]])[0][0])\n"
              "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')], 'TensorFlow imported'\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "18.9395"


@pytest.mark.skipif(toolchains.native_problem() is not None, reason=toolchains.native_problem() or "")
def test_the_readmes_notebook_example_runs_as_written(tmp_path):
    text = (ROOT / "README.md").read_text()
    block = text.split("## From a notebook", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    mismatches, steps, files = done.stdout.splitlines()[0].split()
    assert mismatches == "0" and float(steps) <= 4 and files == "8"
    assert done.stdout.splitlines()[1] == "True"
    assert (tmp_path / "build" / "notebook" / "model" / "model.tflite").is_file()
