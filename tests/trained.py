"""Models trained and converted once per test session, shared by the test modules."""
from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from pipeline.model import data
from pipeline.model import quantize
from pipeline.int8 import tflite_model
from pipeline.model import train
from pipeline.model.data import Dataset


@functools.cache
def keras_model(hidden: tuple[int, ...] = (), activation: str = "linear", epochs: int = 500, seed: int = 0):
    return train.train(data.seed(), train.TrainConfig(hidden, activation, epochs=epochs, seed=seed)).model


@functools.cache
def tflite(hidden: tuple[int, ...] = (), activation: str = "linear", per_channel: bool = False,
           input_range: tuple[float, float] = data.SEED_RANGE) -> bytes:
    return quantize.convert(keras_model(hidden, activation), input_range, per_channel=per_channel)


@functools.cache
def random_tflite(inputs: int, hidden: tuple[int, ...], outputs: int, activation: str, per_channel: bool,
                  seed: int = 0) -> bytes:
    """Untrained but randomly initialised: wide weight spreads stress the rounding paths."""
    import keras
    keras.utils.set_random_seed(seed)
    model = train.build_model(inputs, outputs, hidden, activation)
    return quantize.convert(model, (-3.0, 5.0), per_channel=per_channel)


def parsed(data_bytes: bytes) -> tflite_model.TfliteModel:
    return tflite_model.read(data_bytes)


def all_codes(inputs: int = 1, count: int = 256, seed: int = 0) -> np.ndarray:
    if inputs == 1:
        return np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    return np.random.default_rng(seed).integers(-128, 128, size=(count, inputs), dtype=np.int16).astype(np.int8)


def seed_data() -> Dataset:
    return data.seed()


@functools.cache
def activation_tflite(activation: str, inputs: int = 1, input_range: tuple[float, float] = (-3.0, 5.0)) -> bytes:
    """The activation alone on the model's input (one LOGISTIC, TANH or SOFTMAX op): the tests choose
    its int8 input codes directly, every code, ties and saturated logits included."""
    import keras
    model = keras.Sequential([keras.Input(shape=(inputs,)), keras.layers.Activation(activation)])
    return quantize.convert(model, input_range)


@functools.cache
def classifier_tflite(inputs: int, hidden: tuple[int, ...], classes: int, activation: str = "relu",
                      output: str = "softmax", seed: int = 0, logit_gain: float = 1.0, tie: bool = False) -> bytes:
    """Dense layers -> Dense(classes, output), randomly initialised. logit_gain scales the last layer's
    weights (a wide logit spread: exps below diff_min, probabilities saturated at 0 and 1); tie gives
    unit 1 unit 0's weights and bias, so those two logits are equal on every input."""
    import keras
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape=(inputs,))] + [keras.layers.Dense(units, activation=activation) for units in hidden]
    model = keras.Sequential(layers + [keras.layers.Dense(classes, activation=output)])
    weights, bias = model.layers[-1].get_weights()
    weights = weights * logit_gain
    bias = bias + np.random.default_rng(seed).normal(0.0, 0.5, bias.shape).astype(np.float32)
    if tie:
        weights[:, 1], bias[1] = weights[:, 0], bias[0]
    model.layers[-1].set_weights([weights, bias])
    return quantize.convert(model, (-3.0, 5.0))


def logit_codes(classes: int, count: int = 3000, seed: int = 0) -> np.ndarray:
    """int8 logit rows: random, all equal (every code), two equal maxima, only -128 and 127, and one
    127 among -128s (the widest difference)."""
    rng = np.random.default_rng(seed)
    random = rng.integers(-128, 128, size=(count, classes))
    equal = np.repeat(np.arange(-128, 128).reshape(-1, 1), classes, axis=1)
    two_maxima = rng.integers(-128, 128, size=(count // 4, classes))
    two_maxima[:, 0] = two_maxima[:, -1] = two_maxima.max(axis=1)
    saturated = rng.choice([-128, 127], size=(count // 4, classes))
    widest = np.full((classes, classes), -128)
    np.fill_diagonal(widest, 127)
    return np.vstack([random, equal, two_maxima, saturated, widest]).astype(np.int8)


@functools.cache
def board_rounding_tflite() -> tuple[bytes, dict[int, np.ndarray]]:
    """A 4-input FULLY_CONNECTED layer whose float-multiplied scales (the board's TFLM library) and
    double-multiplied ones (the runtime) round an output apart on some row of the build's own sweep,
    and those rows with the board's answers. Searched over fixed integers and float32 scales, so it
    is the same model on every machine (a trained one is not: training's float bits differ by CPU)."""
    import tflite_writer
    from pipeline.int8 import reference
    from pipeline.model import check
    codes = check.seeded_sweep(4)
    for seed in range(5000):
        rng = np.random.default_rng(seed)
        scales = [float(np.float32(v)) for v in rng.uniform(0.001, 0.1, 3)]
        model = tflite_writer.write(
            [tflite_writer.tensor("input", (1, 4), scales[0], int(rng.integers(-128, 128))),
             tflite_writer.tensor("weights", (16, 4), scales[1], 0, rng.integers(-127, 128, (16, 4))),
             tflite_writer.tensor("bias", (16,), scales[0] * scales[1], 0, rng.integers(-3000, 3000, 16), "INT32"),
             tflite_writer.tensor("output", (1, 16), scales[2], int(rng.integers(-128, 128)))],
            [tflite_writer.fully_connected(0, 1, 2, 3)], [0], [3])
        parsed = tflite_model.read(model)
        runtime, board = reference.run(parsed, codes), reference.run(parsed, codes, board=True)
        differ = np.flatnonzero(np.any(runtime != board, axis=1))
        if differ.size:
            return model, {int(row): board[row] for row in differ}
    raise AssertionError("none of 5000 written models rounds apart on the board's library")
