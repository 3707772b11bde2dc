"""Training: the compiled steps are Keras's fit, seeded; the tape loop is the lesson's."""
from __future__ import annotations

import numpy as np
import pytest
import keras

from pipeline import data, explain, train


def test_compiled_steps_give_model_fit_weights():
    d = data.seed()
    keras.utils.set_random_seed(0)
    reference = train.build_model(1, 1, (2,), "linear")
    reference.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    reference.fit(d.x, d.y, epochs=30, batch_size=len(d.x), shuffle=False, verbose=0)
    ours = train.train(d, train.TrainConfig(hidden=(2,), epochs=30)).model
    for a, b in zip(reference.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_seed_neuron_learns_the_line():
    result = train.train(data.seed(), train.TrainConfig())
    w, b = (float(v.ravel()[0]) for v in result.model.get_weights())
    assert 1.9969 <= w <= 1.9978 and -0.993 <= b <= -0.990
    assert 18.97 < float(result.model(np.array([[10.0]], dtype=np.float32))[0, 0]) < 18.99
    assert len(result.losses) == 500 and result.losses[-1] < result.losses[0]


def test_same_seed_same_weights_other_seed_other_start():
    config = train.TrainConfig(hidden=(2,), epochs=50)
    a = train.train(data.seed(), config).model.get_weights()
    b = train.train(data.seed(), config).model.get_weights()
    c = train.train(data.seed(), train.TrainConfig(hidden=(2,), epochs=50, seed=1)).model.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_tape_loop_reproduces_lesson_numbers():
    result = train.train(data.seed(), train.TrainConfig(trainer="tape", epochs=50, lr=0.09))
    last = result.trajectory[-1]
    assert (round(last["w"], 4), round(last["b"], 4)) == (1.9812, -0.9418)
    assert result.trajectory[0]["loss"] > 700  # w = b = 10 starts far off
    w, b = (float(v.ravel()[0]) for v in result.model.get_weights())
    assert (w, b) == pytest.approx((last["w"], last["b"]), abs=1e-6)


def test_tape_refuses_other_models():
    with pytest.raises(train.TrainingError, match="single neuron"):
        train.train(data.seed(), train.TrainConfig(hidden=(2,), trainer="tape"))


def test_divergence_names_the_epoch():
    with pytest.raises(train.TrainingError, match=r"diverged.*epoch \d+.*--lr"):
        train.train(data.seed(), train.TrainConfig(lr=5.0, epochs=200))


def test_equation_and_hand_computation():
    model = train.train(data.seed(), train.TrainConfig(hidden=(2,))).model
    layers = explain.layers(model)
    assert explain.equation(layers, ("x", "y"), 1) == ["y = 2.0000x - 1.0000"]
    x = np.array([[10.0]])
    assert abs(explain.forward(layers, x)[0, 0] - float(model(x.astype(np.float32))[0, 0])) < 1e-4
    lines = explain.hand_computation(layers, 10.0)
    assert len(lines) == 3 and lines[-1].startswith("y = ")
