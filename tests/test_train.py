"""Training: the compiled steps are Keras's fit, seeded; the tape loop is the lesson's."""
from __future__ import annotations

import numpy as np
import pytest
import keras

from pipeline.model import data
from pipeline.model import explain
from pipeline.model import train


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


def test_large_data_trains_on_the_documented_mini_batches():
    """Above batch_rows, step k takes rows k*B.. of one seeded permutation: checked by hand for SGD."""
    d = data.seed()
    config = train.TrainConfig(epochs=2, lr=0.01, batch_rows=4)
    keras.utils.set_random_seed(config.seed)
    start = train.build_model(1, 1, (), "linear").get_weights()
    w, b = float(start[0][0, 0]), float(start[1][0])
    order = np.random.default_rng(config.seed).permutation(len(d.x))
    for step in range(config.epochs):
        rows = order[(step * 4 + np.arange(4)) % len(d.x)]
        x, y = d.x[rows, 0].astype(np.float64), d.y[rows, 0].astype(np.float64)
        residual = w * x + b - y
        w, b = w - config.lr * np.mean(2 * residual * x), b - config.lr * np.mean(2 * residual)
    got = [float(v.ravel()[0]) for v in train.train(d, config).model.get_weights()]
    assert got == pytest.approx([w, b], abs=1e-5)
    full = [float(v.ravel()[0]) for v in train.train(d, train.TrainConfig(epochs=2, lr=0.01)).model.get_weights()]
    assert abs(full[0] - got[0]) > 1e-4  # the full batch is another computation


def test_a_million_rows_cost_a_step_what_4096_rows_cost():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 4, size=(1_000_000, 1)).astype(np.float32)
    big = data.Dataset(x, 2 * x - 1, "memory", ("x", "y"), (-1.0, 4.0))
    result = train.train(big, train.TrainConfig(epochs=500))
    w, b = (float(v.ravel()[0]) for v in result.model.get_weights())
    assert w == pytest.approx(2, abs=0.02) and b == pytest.approx(-1, abs=0.05)
    assert result.seconds < 60


def _sine(rows: int) -> data.Dataset:
    x = np.linspace(0, 6.3, rows, dtype=np.float32).reshape(-1, 1)
    return data.Dataset(x, np.sin(x), "memory", ("x", "y"), (0.0, 6.3))


def test_larger_models_print_a_summary_and_the_lesson_s_print_everything():
    two = explain.explain(train.train(data.seed(), train.TrainConfig(hidden=(2,))).model, ("x", "y"), 1)
    lines = two.lines()
    assert two.full and two.parameters == 7
    assert lines[0].startswith("layer 1: weights [[") and lines[1].startswith("layer 2: weights [[")
    assert any(line.startswith("by hand at x = 10") for line in lines)
    big = explain.explain(train.build_model(1, 1, (16, 16), "relu"), ("x", "y"), 1)
    lines = big.lines()
    assert not big.full and big.parameters == 32 + 272 + 17
    assert len(lines) == 4 and lines[-1] == "321 parameters (every weight and bias in report.json)"
    assert lines[1].startswith("layer 2: 16 -> 16, relu: 272 parameters, weights in [")
    as_dict = big.as_dict()
    assert np.asarray(as_dict["layers"][1]["weights"]).shape == (16, 16)


def test_report_size_follows_the_model_not_the_data():
    from pipeline.model import quantize
    from pipeline.emit import report
    from pipeline.int8 import tflite_model
    d = _sine(50_000)
    model = train.train(d, train.TrainConfig(epochs=20)).model
    tfl = tflite_model.read(quantize.convert(model, d.default_range))
    sample = report.sample(model, tfl, d)
    assert (sample["shown"], sample["of"]) == (report.SAMPLE_ROWS, 50_000)
    assert sample["points"][0]["row"] == 1 and sample["points"][-1]["row"] == 50_000
    assert all(p["x"] == [float(str(d.x[p["row"] - 1, 0]))] for p in sample["points"])
    text = report._json({"data": {"rows": 50_000, "sample": sample}})
    assert len(text) < 40_000 and len(text.splitlines()) == report.SAMPLE_ROWS + 11


def test_fit_picture_spans_the_data_and_the_range_and_the_seed_s_question():
    from pipeline.emit import report
    csv = {"quantization": {"input_range": [0.04, 6.3]}, "lesson": None}
    left, right = report._x_limits(csv, np.array([[0.5], [6.0]]))
    assert left == pytest.approx(0.04 - 0.04 * 6.26) and right == pytest.approx(6.3 + 0.04 * 6.26)
    seed = {"quantization": {"input_range": [-1.0, 12.0]}, "lesson": {"x": 10.0}}
    assert report._x_limits(seed, data.seed().x) == pytest.approx((-1 - 0.52, 12 + 0.52))
    wide = {"quantization": {"input_range": [-1.0, 1.0]}, "lesson": None}
    assert report._x_limits(wide, np.array([[-3.0], [0.0]])) == pytest.approx((-3 - 0.16, 1 + 0.16))
