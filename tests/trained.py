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
