"""A --keras model with a layer the int8 pipeline cannot run is refused before calibration, in one line
naming the layer, its class and the op, with exit status 2 and nothing written: recurrent layers
(whose int8 calibration TensorFlow crashes on with signal 11), an activation and an attention layer
no engine has, and a TensorFlow op without a TFLite builtin. Every model is made here with fixed
weights; the unrolled LSTM the refusal points to is built, to show the way out works."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import build

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

TREE = "Chirale_TensorFlowLite 2.0.0"
LOOP = ("the loop's body is a subgraph of its own and the project runs one graph of ops; TensorFlow's int8 "
        "calibration crashes on such a loop")
NO_ENGINE = f"neither the board's TFLM library ({TREE}) nor the AOT engine has"


@keras.saving.register_keras_serializable(package="test_keras_refusals")
class RunningProduct(keras.layers.Layer):
    """A custom layer computing tf.math.cumprod, which has no TFLite builtin op."""

    def call(self, x):
        return keras.ops.cumprod(x, axis=1)


def _fixed(model: keras.Model) -> keras.Model:
    """Weights from a seeded generator, not from training: the same floats on every machine."""
    rng = np.random.default_rng(11)
    model.set_weights([rng.uniform(-0.5, 0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _save(folder: Path, name: str, model: keras.Model) -> Path:
    path = folder / f"{name}.keras"
    _fixed(model).save(path)
    return path


def _data(folder: Path, width: int) -> Path:
    """width input columns and a target column, as --data takes them."""
    x = np.random.default_rng(3).uniform(-1, 1, size=(40, width))
    path = folder / "data.csv"
    np.savetxt(path, np.hstack([x, x[:, :1]]), delimiter=",", fmt="%.4f")
    return path


def _sequence(layer: keras.layers.Layer) -> keras.Model:
    """Input((5, 2)), the layer, Dense(1): the issue's model (10 input columns)."""
    return keras.Sequential([keras.Input((5, 2)), layer, keras.layers.Dense(1, name="value")])


def _build(folder: Path, path: Path, *more: str) -> int:
    return build.main(["-q", "--no-footprint", "--keras", str(path), "--data", str(_data(folder, 10)), *more,
                       "--out", str(folder / "out" / "model"), "--report-dir", str(folder / "out" / "report")])


def _refusal(folder: Path, path: Path, capsys, *more: str) -> str:
    """The one line of a refused build, which exited 2 and wrote nothing."""
    assert _build(folder, path, *more) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not (folder / "out").exists()
    return err[0]


def _recurrent(made: str) -> str:
    return (f"make it {made}(..., unroll=True): its time steps are fixed, so it then converts to plain ops the "
            "TFLM engine runs")


@pytest.mark.parametrize("kind, layer, name", [
    ("LSTM", lambda: keras.layers.LSTM(4), "lstm"),
    ("GRU", lambda: keras.layers.GRU(4), "gru"),
    ("SimpleRNN", lambda: keras.layers.SimpleRNN(4), "simple_rnn"),
])
def test_a_recurrent_layer_is_refused_naming_it_and_its_loop(tmp_path, capsys, kind, layer, name):
    path = _save(tmp_path, kind, _sequence(layer()))
    assert _refusal(tmp_path, path, capsys) == (
        f"error: --keras {path}: layer '{name}' ({kind}) becomes a WHILE loop, which the int8 pipeline cannot "
        f"run ({LOOP}); {_recurrent(kind)}")


def test_a_bidirectional_layer_is_refused_with_both_its_ops(tmp_path, capsys):
    path = _save(tmp_path, "bidirectional", _sequence(keras.layers.Bidirectional(keras.layers.LSTM(4), name="both_ways")))
    assert _refusal(tmp_path, path, capsys) == (
        f"error: --keras {path}: layer 'both_ways' (Bidirectional) becomes REVERSE_V2 and a WHILE loop, which the "
        f"int8 pipeline cannot run ({LOOP}; {NO_ENGINE} REVERSE_V2); "
        "make it Bidirectional(LSTM(..., unroll=True)): its time steps are fixed, so it then converts to plain ops "
        "the TFLM engine runs")


def test_an_activation_no_engine_has_is_refused_before_calibration_for_either_engine(tmp_path, capsys):
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, activation="gelu", name="smooth"),
                              keras.layers.Dense(1)])
    path = _save(tmp_path, "gelu", model)
    line = (f"error: --keras {path}: layer 'smooth' (Dense) becomes GELU, which the int8 pipeline cannot run "
            f"({NO_ENGINE} GELU); replace the layer, or export the model without it")
    assert _refusal(tmp_path, path, capsys) == line
    assert _refusal(tmp_path, path, capsys, "--engine", "aot") == line


def test_an_attention_layer_is_refused_naming_its_matrix_product(tmp_path, capsys):
    x = keras.Input((5, 2))
    attended = keras.layers.MultiHeadAttention(2, 2, name="attention")(x, x)
    path = _save(tmp_path, "attention", keras.Model(x, keras.layers.Dense(1)(keras.layers.Flatten()(attended))))
    assert _refusal(tmp_path, path, capsys) == (
        f"error: --keras {path}: layer 'attention' (MultiHeadAttention) becomes BATCH_MATMUL, which the int8 "
        f"pipeline cannot run ({NO_ENGINE} BATCH_MATMUL); replace the layer, or export the model without it")


def test_a_tensorflow_op_without_a_tflite_builtin_is_refused_naming_the_layer(tmp_path, capsys):
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4), RunningProduct(name="running_product"),
                              keras.layers.Dense(1)])
    path = _save(tmp_path, "product", model)
    assert _refusal(tmp_path, path, capsys) == (
        f"error: --keras {path}: layer 'running_product' (RunningProduct) uses TensorFlow's Cumprod, which has no "
        "TFLite builtin op, so the converter cannot take it (the device runs builtin ops only); replace the layer, "
        "or export the model without it")


def test_the_unrolled_lstm_the_refusal_points_to_builds(tmp_path, capsys):
    path = _save(tmp_path, "unrolled", _sequence(keras.layers.LSTM(4, unroll=True, name="lstm")))
    assert _build(tmp_path, path) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "model" / "model.json").is_file()
