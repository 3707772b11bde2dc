"""Training: the lesson's Keras setup, run as compiled steps, and its hand-written GradientTape loop."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf
import keras

from pipeline.model.data import BATCH_ROWS, Dataset, class_weights
from pipeline.errors import PipelineError

ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh")
"""Hidden-layer activations: int8 TFLM fuses the first three into FULLY_CONNECTED; sigmoid and
tanh become LOGISTIC and TANH ops of their own."""


class TrainingError(PipelineError, RuntimeError):
    """Training did not produce a usable model."""


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = ()
    activation: str = "linear"
    trainer: str = "fit"
    epochs: int = 500
    lr: float = 0.01
    optimizer: str = "sgd"
    seed: int = 0
    batch_rows: int = BATCH_ROWS
    """Rows per step: all of them up to this many (the lesson's full batch), else a mini-batch."""
    task: str = "regress"
    """regress: a linear output and MSE; classify: a softmax output and categorical cross-entropy."""


@dataclass
class Trained:
    model: keras.Model
    losses: np.ndarray
    seconds: float
    trajectory: list[dict[str, float]] = field(default_factory=list)
    class_weights: np.ndarray | None = None
    """A classifier's loss weight per class, in label order."""
    standardized: bool = False
    """SGD diverged on the inputs as given, and trained on standardized ones (folded back since)."""


class Centered:
    """A model trained on x - center, called on x as the device computes it: the subtraction in float32."""

    def __init__(self, model: keras.Model, center: float) -> None:
        self.model, self.center = model, np.float32(center)

    def __call__(self, x: np.ndarray, training: bool = False) -> tf.Tensor:
        return self.model(np.asarray(x, dtype=np.float32) - self.center, training=training)


def centered(model: keras.Model, center: float) -> keras.Model | Centered:
    """The float model in terms of the data's x: the Keras model itself where there is no center."""
    return Centered(model, center) if center else model


def build_model(inputs: int, outputs: int, hidden: tuple[int, ...], activation: str,
                softmax: bool = False) -> keras.Model:
    """Dense layers as in the lesson, a softmax on the last for a classifier; Keras 3 wants an
    explicit Input, not input_shape=.

    Fixed names: tensor names end up in the flatbuffer, so Keras's per-process counters
    (dense_1, dense_2, ...) would change its bytes and hash from one build to the next."""
    sizes = [*hidden, outputs]
    layers: list[keras.layers.Layer] = [keras.Input(shape=(inputs,), name="x")]
    last = "softmax" if softmax else None
    layers += [keras.layers.Dense(units, activation=activation if k < len(hidden) else last, name=f"dense_{k + 1}")
               for k, units in enumerate(sizes)]
    return keras.Sequential(layers, name="model")


def _optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.lr)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.lr)
    raise TrainingError(f"unknown optimizer {config.optimizer!r} (choose sgd or adam)")


Progress = Callable[[int, int, float], None]


def progress_bar() -> Progress:
    """Keras' progress bar, shown only on a terminal and only once training is seen to take a while."""
    started = time.perf_counter()
    bar: list[keras.utils.Progbar] = []

    def show(done: int, total: int, loss: float) -> None:
        if not bar:
            elapsed = time.perf_counter() - started
            if not sys.stdout.isatty() or (done < total and elapsed * total / max(done, 1) < 1.0):
                return
            bar.append(keras.utils.Progbar(total, width=30, stateful_metrics=["loss"], unit_name="epoch"))
        bar[0].update(done, [("loss", loss)], finalize=done == total)
    return show


def _check(losses: np.ndarray, model: keras.Model, lr: float) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    weights_ok = all(np.all(np.isfinite(w)) for w in model.get_weights())
    if bad.size or not weights_ok:
        epoch = int(bad[0]) + 1 if bad.size else len(losses)
        raise TrainingError(f"training diverged: the loss became {losses[bad[0]] if bad.size else 'finite but the weights did not'}"
                            f" at epoch {epoch}; lower the learning rate (--lr, now {lr}), try --optimizer adam, or scale the data")


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each input's mean and spread (1 for a constant input): training sees every input near 0 and of
    unit spread, so SGD's step suits inputs at 100 +- 1 or 1000 times wider than another as it suits
    the lesson's."""
    mean = np.asarray(x, dtype=np.float64).mean(axis=0)
    spread = np.asarray(x, dtype=np.float64).std(axis=0)
    return mean, np.where(spread > 0, spread, 1.0)


def fold_standardizer(model: keras.Model, mean: np.ndarray, spread: np.ndarray) -> None:
    """Folds (x - mean) / spread into the first Dense layer, so the model takes raw inputs and has the
    same layers as one trained on them: W' = W / spread, b' = b - mean . W'."""
    first = model.layers[0]
    weights, bias = first.get_weights()
    folded = weights.astype(np.float64) / spread[:, None]
    first.set_weights([folded.astype(np.float32), (bias - mean @ folded).astype(np.float32)])


def fit(data: Dataset, config: TrainConfig, progress: Progress | None = None) -> Trained:
    """The seed's SGD + MSE full-batch epochs on the inputs as given (the lesson's numbers, bit for
    bit); where that diverges (inputs far from 0, or one far wider than another), once more on
    standardized inputs, the scaling then folded into the first layer (Trained.standardized)."""
    try:
        return _fit(data, config, progress, standardize=False)
    except TrainingError as diverged:
        mean, spread = standardizer(data.x)
        if np.allclose(mean, 0) and np.allclose(spread, 1):
            raise
        try:
            return _fit(data, config, progress, standardize=True)
        except TrainingError:
            raise diverged from None


def _fit(data: Dataset, config: TrainConfig, progress: Progress | None, standardize: bool) -> Trained:
    """Compiled steps: the same weights as model.fit, without 30 ms per epoch.

    Data larger than config.batch_rows trains on mini-batches: step k takes the next batch_rows
    rows of one seeded shuffle, so a step costs the same for 10,000 rows as for 1,000,000."""
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    classify = config.task == "classify"
    if classify and data.classes is None:
        raise TrainingError("a classifier trains on class labels, and this data has none")
    model = build_model(data.inputs, data.outputs, config.hidden, config.activation, softmax=classify)
    optimizer = _optimizer(config)
    loss_fn = keras.losses.CategoricalCrossentropy() if classify else keras.losses.MeanSquaredError()
    weights = class_weights(data.counts()) if classify else None
    row_weight = tf.constant(weights.astype(np.float32)[data.classes]) if classify else None
    mean, spread = standardizer(data.x) if standardize else (np.zeros(data.inputs), np.ones(data.inputs))
    x = tf.constant(((data.x - mean) / spread).astype(np.float32) if standardize else data.x)
    y = tf.constant(data.y)
    rows = len(data.x)
    batch = min(rows, config.batch_rows)
    order = tf.constant(np.random.default_rng(config.seed).permutation(rows).astype(np.int32)) if batch < rows else None

    @tf.function(reduce_retracing=True)
    def steps(start: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
        losses = tf.TensorArray(tf.float32, size=n)
        for i in tf.range(n):
            if order is None:
                xb, yb, wb = x, y, row_weight
            else:
                picked = tf.gather(order, ((start + tf.cast(i, tf.int64)) * batch + tf.range(batch, dtype=tf.int64)) % rows)
                xb, yb = tf.gather(x, picked), tf.gather(y, picked)
                wb = None if row_weight is None else tf.gather(row_weight, picked)
            with tf.GradientTape() as tape:
                if wb is None:
                    loss = loss_fn(yb, model(xb, training=True))
                else:
                    loss = loss_fn(yb, model(xb, training=True), sample_weight=wb)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            losses = losses.write(i, loss)
        return losses.stack()

    started = time.perf_counter()
    chunk = max(1, math.ceil(config.epochs / 20))
    history: list[np.ndarray] = []
    done = 0
    while done < config.epochs:
        n = min(chunk, config.epochs - done)
        history.append(steps(tf.constant(done, tf.int64), tf.constant(n)).numpy())
        done += n
        if not np.all(np.isfinite(history[-1])):
            break  # diverged: no use training on
        if progress is not None:
            progress(done, config.epochs, float(history[-1][-1]))
    losses = np.concatenate(history) if history else np.zeros(0, dtype=np.float32)
    _check(losses, model, config.lr)
    if standardize:
        fold_standardizer(model, mean, spread)
        _check(losses, model, config.lr)
    return Trained(model, losses, time.perf_counter() - started, class_weights=weights, standardized=standardize)


def tape(data: Dataset, config: TrainConfig, progress: Progress | None = None) -> Trained:
    """The lesson's own loop: w = b = 10, y = w*x + b, MSE, step against the gradient."""
    if data.inputs != 1 or data.outputs != 1 or config.hidden or config.task != "regress":
        raise TrainingError("--trainer tape trains the lesson's single neuron: one input, one output, no --hidden")
    started = time.perf_counter()
    w, b = tf.Variable(10.0), tf.Variable(10.0)
    x, y = tf.constant(data.x[:, 0]), tf.constant(data.y[:, 0])
    trajectory, losses = [], []
    for epoch in range(1, config.epochs + 1):
        with tf.GradientTape() as g:
            loss = tf.reduce_mean(tf.square(w * x + b - y))
        dw, db = g.gradient(loss, [w, b])
        w.assign_sub(config.lr * dw)
        b.assign_sub(config.lr * db)
        losses.append(float(loss))
        trajectory.append({"epoch": epoch, "w": float(w), "b": float(b), "loss": float(loss)})
        if progress is not None:
            progress(epoch, config.epochs, float(loss))
    model = build_model(1, 1, (), "linear")
    model.layers[-1].set_weights([np.array([[float(w)]], dtype=np.float32), np.array([float(b)], dtype=np.float32)])
    result = Trained(model, np.array(losses, dtype=np.float32), time.perf_counter() - started, trajectory)
    _check(result.losses, model, config.lr)
    return result


def train(data: Dataset, config: TrainConfig, progress: Progress | None = None) -> Trained:
    if config.trainer == "tape":
        return tape(data, config, progress)
    if config.trainer == "fit":
        return fit(data, config, progress)
    raise TrainingError(f"unknown trainer {config.trainer!r} (choose fit or tape)")
