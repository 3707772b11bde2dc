"""Classification: labels read from the CSV, the stratified hold-out, class weights, softmax
training, and the hold-out figures (accuracy, precision, recall, confusion matrix) checked
against numbers computed here from the oracle's int8 outputs."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest

import refusals

from pipeline import build, build_args, stages
from pipeline.int8 import oracle, quant, reference, tflite_model
from pipeline.model import check, data, explain, quantize, train

CENTRES = {"red": (0.0, 0.0), "green": (3.0, 1.0), "blue": (1.0, 3.0)}


def blobs_csv(path: Path, per_class: int | dict[str, int] = 40, seed: int = 5, spread: float = 0.6,
              labels: dict[str, str] | None = None) -> Path:
    """Three Gaussian blobs in 2-D, rows shuffled, labelled by name (or by `labels`' renaming)."""
    rng = np.random.default_rng(seed)
    counts = per_class if isinstance(per_class, dict) else {name: per_class for name in CENTRES}
    rows = [(float(a), float(b), (labels or {}).get(name, name))
            for name, centre in CENTRES.items() for a, b in rng.normal(centre, spread, size=(counts[name], 2))]
    lines = [f"{a:.4f},{b:.4f},{label}" for a, b, label in (rows[k] for k in rng.permutation(len(rows)))]
    path.write_text("a,b,colour\n" + "\n".join(lines) + "\n")
    return path


def test_text_labels_make_a_classifier_in_sorted_label_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,kind\n1,2,cat\n2,3,dog\n\n# note\n3,4,cat\n4,5,\"ant\"\n5,6,dog\n6,7,ant\n")
    d = data.load_csv(path)
    assert d.task == "classify" and d.labels == ("ant", "cat", "dog")  # sorted, not first-seen (cat, dog, ant)
    assert d.classes.tolist() == [1, 2, 1, 0, 2, 0] and d.lines.tolist() == [2, 3, 6, 7, 8, 9]
    assert d.outputs == 3 and d.y.tolist() == np.eye(3)[d.classes].tolist()
    assert d.x.tolist() == [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]] and d.names == ("a", "b", "kind")
    assert "line 2's target 'cat' is not a number" in d.task_reason


def test_integer_labels_are_a_regression_unless_told_and_sort_by_value(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n2,3,10\n3,4,2\n4,5,10\n5,6,0\n6,7,2\n")
    assert data.load_csv(path).task == "regress"
    d = data.load_csv(path, task="classify")
    assert d.labels == ("0", "2", "10") and d.classes.tolist() == [0, 2, 1, 2, 0, 1]
    assert d.task_reason == "--task classify" and d.names == ("x1", "x2", "class")


def test_task_regress_on_text_labels_is_a_bad_number(tmp_path, capsys):
    path = blobs_csv(tmp_path / "d.csv")
    status = build.main(["--data", str(path), "--task", "regress", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert status == 2 and re.fullmatch(rf"error: {re.escape(str(path))}:2: column 3: '\w+' is not a number .*\n", err)


BAD_LABELS = [
    ("one class only", "x,y,c\n1,2,a\n2,3,a\n3,4,a\n", r":2: every row has the class 'a'; a classifier needs at least 2"),
    ("empty label", "x,y,c\n1,2,a\n2,3,b\n3,4,\n4,5,a\n", r":4: column 3: empty class label"),
    ("blank quoted label", "x,y,c\n1,2,a\n2,3,b\n3,4,\" \"\n", r":4: column 3: empty class label"),
    ("single-row class", "x,y,c\n1,2,a\n2,3,b\n3,4,a\n4,5,c\n5,6,b\n", r":5: class 'c' has this row only; each class"),
    ("bad input", "x,y,c\n1,2,a\n2,zz,b\n", r":3: column 2: 'zz' is not a number"),
    ("ragged", "x,y,c\n1,2,a\n2,b\n", r":3: 2 column\(s\), expected 3"),
    ("control character", "x,y,c\n1,2,a\n2,3,b\x07\n", r":3: column 3: class label 'b\\x07' holds a control"),
    ("label too long", "x,y,c\n1,2,a\n2,3," + "\u00e9" * 20 + "\n", r":3: column 3: class label '\u00e9+' is 120 bytes as the "
     r"device sends it \(%C3%A9"),
]


@pytest.mark.parametrize("name,content,message", BAD_LABELS, ids=[b[0] for b in BAD_LABELS])
def test_bad_label_data_is_one_line_naming_file_and_line(name, content, message, tmp_path, capsys):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    out = tmp_path / "m"
    status = build.main(["--data", str(path), "--out", str(out), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {path}:") and re.search(message, err), err
    assert not out.exists() and not (tmp_path / "r").exists()


def test_a_guessed_task_says_how_to_override_it(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,oops\n2,3\n3,4\n")  # a typo on line 2 makes it look like labels
    with pytest.raises(data.DataError, match=r":2: class 'oops' has this row only.*--task regress if not"):
        data.load_csv(path)


def test_more_classes_than_outputs_are_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,c\n" + "".join(f"{k},c{k // 2}\n" for k in range(2 * data.MAX_CLASSES + 2)))
    n = data.MAX_CLASSES
    with pytest.raises(data.DataError, match=rf":{2 * n + 2}: column 2: 'c{n}' would be class {n + 1}; at most {n}"):
        data.load_csv(path)


BAD_ARGUMENTS = [
    (["--holdout", "0"], r"--holdout 0: must be > 0 and < 1"),
    (["--holdout", "1"], r"--holdout 1: must be > 0 and < 1"),
    (["--task", "classify"], r"--task classify needs --data"),
    (["--task", "classify", "--data", "d.csv", "--outputs", "2"], r"--outputs 2 does not apply to --task classify"),
    (["--task", "classify", "--data", "d.csv", "--trainer", "tape"], r"--trainer tape .*not --task classify"),
    (["--task", "regress", "--data", "d.csv", "--holdout", "0.3"], r"--holdout applies to classifiers"),
    (["--activation", "tanh"], r"--activation tanh applies to hidden layers"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[" ".join(a[0]) for a in BAD_ARGUMENTS])
def test_bad_classifier_arguments_are_refused(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = build.main([*args, "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and re.search(message, err) and len(err.strip().splitlines()) == 1, err


def test_holdout_on_regression_data_is_refused_naming_why(tmp_path, capsys):
    path = tmp_path / "line.csv"
    path.write_text("x,y\n1,2\n2,4\n3,6\n")
    status = build.main(["--data", str(path), "--holdout", "0.5", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert status == 2 and "--holdout applies to classifiers" in err and "the targets are numbers" in err


def test_tape_on_a_guessed_classifier_is_refused(tmp_path, capsys):
    status = build.main(["--data", str(blobs_csv(tmp_path / "d.csv")), "--trainer", "tape", "--out", str(tmp_path / "m")])
    assert status == 2 and "--trainer tape" in capsys.readouterr().err


# -- the hold-out split ------------------------------------------------------------------------

def test_holdout_is_stratified_seeded_disjoint_and_deterministic():
    classes = np.repeat(np.arange(3), [100, 50, 10]).astype(np.int32)
    np.random.default_rng(0).shuffle(classes)
    train_rows, held = data.holdout_split(classes, 0.2, seed=3)
    assert np.intersect1d(train_rows, held).size == 0 and len(train_rows) + len(held) == len(classes)
    assert np.bincount(classes[held]).tolist() == [20, 10, 2]  # 20% of each class
    assert np.all(np.diff(held) > 0) and np.all(np.diff(train_rows) > 0)
    again = data.holdout_split(classes, 0.2, seed=3)
    assert np.array_equal(again[1], held) and np.array_equal(again[0], train_rows)
    other = data.holdout_split(classes, 0.2, seed=4)[1]
    assert not np.array_equal(other, held) and np.bincount(classes[other]).tolist() == [20, 10, 2]


def test_every_class_keeps_a_row_on_each_side():
    classes = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], dtype=np.int32)
    for fraction in (0.01, 0.5, 0.99):
        train_rows, held = data.holdout_split(classes, fraction, seed=0)
        assert set(classes[held]) == {0, 1} and set(classes[train_rows]) == {0, 1}


def test_split_keeps_lines_and_labels(tmp_path):
    d = data.load_csv(blobs_csv(tmp_path / "d.csv", per_class=20))
    train_set, held = stages.split(d, None, seed=0)
    assert held.labels == train_set.labels == d.labels == ("blue", "green", "red")
    assert held.counts().tolist() == [4, 4, 4] and train_set.counts().tolist() == [16, 16, 16]
    assert sorted(held.lines.tolist() + train_set.lines.tolist()) == list(range(2, 62))
    assert train_set.default_range == (float(train_set.x.min()), float(train_set.x.max()))


def test_a_small_holdout_warns():
    assert data.holdout_warnings(("a", "b"), np.array([40, 40])) == []
    few = data.holdout_warnings(("a", "b"), np.array([10, 3]))
    assert len(few) == 2 and "13 rows" in few[0] and "'b' 3" in few[1] and "'a'" not in few[1]


def test_class_weights_balance_an_unbalanced_set():
    weights = data.class_weights(np.array([90, 30, 10]))
    np.testing.assert_allclose(weights, [130 / 270, 130 / 90, 130 / 30])
    np.testing.assert_allclose(weights * [90, 30, 10], [130 / 3] * 3)  # each class weighs the same
    assert data.class_weights(np.array([25, 25])).tolist() == [1.0, 1.0]


def test_the_build_reports_task_classes_split_and_weights(tmp_path):
    d = data.load_csv(blobs_csv(tmp_path / "d.csv", per_class={"red": 60, "green": 30, "blue": 10}))
    train_set, held = stages.split(d, 0.2, seed=0)
    lines = stages._data_lines(d, train_set, held, 0.2)
    assert lines[0] == (f"data: {d.source}: 100 rows, 2 input(s), 3 classes; task classify ({d.task_reason})")
    assert lines[1] == "classes (in sorted label order, the outputs' order): blue 10, green 30, red 60"
    assert lines[2].startswith("hold-out: 0.2 of each class, seed-chosen: 20 rows (2, 6, 12), training 80 rows "
                               "(8, 24, 48); class weights 3.33, 1.11, 0.556")


# -- training ----------------------------------------------------------------------------------

@functools.cache
def trained_blobs(folder: str, hidden: tuple[int, ...] = (8,), activation: str = "relu", epochs: int = 150):
    d = data.load_csv(blobs_csv(Path(folder) / f"blobs-{activation}.csv", per_class=40, spread=0.9))
    train_set, held = stages.split(d, None, seed=0)
    config = train.TrainConfig(hidden, activation, epochs=epochs, lr=0.02, optimizer="adam", task="classify")
    result = train.train(train_set, config)
    tflite = quantize.convert(result.model, train_set.default_range)
    return train_set, held, result, tflite


@pytest.fixture(scope="module")
def blobs_folder(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("blobs"))


def test_a_classifier_has_a_softmax_output_and_learns(blobs_folder):
    train_set, held, result, tflite = trained_blobs(blobs_folder)
    assert result.model.layers[-1].activation.__name__ == "softmax"
    assert result.losses[-1] < 0.3 * result.losses[0] and result.class_weights.tolist() == [1.0, 1.0, 1.0]
    probabilities = np.asarray(result.model(train_set.x))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    tfl = tflite_model.read(tflite)
    assert tfl.ops[-1] == "SOFTMAX"
    assert (float(tfl.output.scales[0]), int(tfl.output.zero_points[0])) == (1 / 256, -128)
    forward = explain.forward(explain.layers(result.model), train_set.x)
    np.testing.assert_allclose(forward, probabilities, atol=1e-5)


def test_classifier_training_is_deterministic(blobs_folder):
    train_set, _, result, _ = trained_blobs(blobs_folder)
    config = train.TrainConfig((8,), "relu", epochs=150, lr=0.02, optimizer="adam", task="classify")
    again = train.train(train_set, config).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(result.model.get_weights(), again))


def test_class_weights_enter_the_loss():
    """Two classes, 9:1: the weighted loss at the start is the mean over classes, not over rows."""
    x = np.array([[v] for v in range(20)], dtype=np.float32)
    classes = np.array([0] * 18 + [1] * 2, dtype=np.int32)
    d = data.Dataset(x, np.eye(2, dtype=np.float32)[classes], "memory", ("x", "c"), (0.0, 19.0),
                     task="classify", labels=("a", "b"), classes=classes)
    result = train.train(d, train.TrainConfig(epochs=1, lr=1e-9, task="classify"))
    p = np.asarray(result.model(x), dtype=np.float64)
    rows = -np.log(np.clip(p[np.arange(20), classes], 1e-7, 1))
    weights = data.class_weights(np.array([18, 2]))[classes]
    assert result.losses[0] == pytest.approx(np.mean(weights * rows), rel=1e-4)
    assert abs(result.losses[0] - np.mean(rows)) > 1e-3


@pytest.mark.parametrize("activation,op", [("sigmoid", "LOGISTIC"), ("tanh", "TANH")])
def test_sigmoid_and_tanh_hidden_layers(activation, op, blobs_folder):
    train_set, _, result, tflite = trained_blobs(blobs_folder, (6,), activation, epochs=60)
    assert op in tflite_model.read(tflite).ops
    layers = explain.layers(result.model)
    assert layers[0].activation == activation
    np.testing.assert_allclose(explain.forward(layers, train_set.x), np.asarray(result.model(train_set.x)), atol=1e-5)


def test_activations_are_the_parsers():
    assert build_args.ACTIVATIONS == train.ACTIVATIONS
    assert build.parse_args(["--activation", "sigmoid", "--hidden", "4"]).activation == "sigmoid"


# -- the hold-out figures ----------------------------------------------------------------------

def test_top_class_ties_go_to_the_lowest_index():
    assert check.top(np.array([[5, 5, 1], [-128, 127, 127], [3, 2, 3]], dtype=np.int8)).tolist() == [0, 1, 0]


def test_holdout_figures_are_the_oracles(blobs_folder):
    train_set, held, result, tflite = trained_blobs(blobs_folder)
    tfl = tflite_model.read(tflite)
    c = check.classify(result.model, tflite, tfl, held, train_set.counts(), result.class_weights)
    r = c.as_dict()
    codes = quant.quantize(held.x, float(tfl.input.scales[0]), int(tfl.input.zero_points[0]))
    device, _ = oracle.int8_outputs(tflite, codes)
    predicted = [max(range(3), key=lambda k: (int(row[k]), -k)) for row in device]
    truth = held.classes.tolist()
    matrix = [[sum(1 for t, p in zip(truth, predicted) if (t, p) == (i, j)) for j in range(3)] for i in range(3)]
    assert r["confusion"] == matrix and sum(map(sum, matrix)) == len(truth) == r["holdout_rows"] == 24
    assert r["accuracy"]["device"] == pytest.approx(sum(t == p for t, p in zip(truth, predicted)) / len(truth))
    for k in range(3):
        hits = matrix[k][k]
        column = sum(matrix[i][k] for i in range(3))
        assert r["per_class"]["recall"][k] == pytest.approx(hits / sum(matrix[k]))
        assert r["per_class"]["precision"][k] == (pytest.approx(hits / column) if column else None)
    float_top = np.asarray(result.model(held.x)).argmax(axis=1)
    assert r["accuracy"]["float"] == pytest.approx(np.mean(float_top == held.classes))
    assert r["disagreements"]["float_vs_device"] == int(np.sum(float_top != np.array(predicted)))
    assert r["balance"] == {"train": [32, 32, 32], "holdout": [8, 8, 8], "class_weights": [1.0, 1.0, 1.0]}
    assert r["accuracy"]["device"] > 0.8 and r["labels"] == ["blue", "green", "red"]
    assert r["max_lsb"] == pytest.approx(
        np.max(np.abs((device.astype(np.float64) + 128) / 256 - np.asarray(result.model(held.x)))) * 256)


def test_precision_of_a_class_never_predicted_is_none_not_zero():
    matrix = check.confusion(np.array([0, 0, 1, 2]), np.array([0, 0, 0, 2]), 3)
    assert matrix.tolist() == [[2, 0, 0], [1, 0, 0], [0, 0, 1]]
    precision, recall = check.per_class(matrix)
    assert precision == [pytest.approx(2 / 3), None, 1.0] and recall == [1.0, 0.0, 1.0]
    assert check.per_class(check.confusion(np.array([0, 0]), np.array([0, 1]), 3))[1][2] is None


def test_the_report_shows_the_confusion_matrix_and_draws_it(blobs_folder):
    from pipeline.emit import report
    train_set, held, result, tflite = trained_blobs(blobs_folder)
    c = check.classify(result.model, tflite, tflite_model.read(tflite), held, train_set.counts(),
                       result.class_weights).as_dict()
    lines = report.classification_lines(c)
    text = "\n".join(lines)
    assert "| true \\ predicted | blue | green | red |" in text
    for label, row in zip(c["labels"], c["confusion"]):
        assert f"| {label} | " + " | ".join(map(str, row)) + " |" in lines
    assert f"| int8 as the device computes it ({c['device_oracle']}) | {100 * c['accuracy']['device']:.2f}% |" in text
    assert "lowest index wins" in text and "sorted label order" in text
    png = report.confusion_png(c, "blobs")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_disagreements_name_the_rows_lines():
    c = check.Classification(("a", "b"), np.array([0, 1, 1]), np.array([0, 1, 1]), np.array([0, 1, 0]),
                             np.array([1, 1, 0]), "x", np.array([7, 9, 12]), 3.0, np.array([5, 5]),
                             np.array([1, 2]), np.array([1.0, 1.0]))
    d = c.as_dict()["disagreements"]
    assert d == {"float_vs_device": 2, "int8_vs_device": 1, "lines": [7, 12]}


def test_a_classifier_builds_end_to_end(tmp_path, capsys):
    """The whole build: needs the integer reference's SOFTMAX (the emitter lowers the model through it)."""
    try:
        reference.lower(tflite_model.read(trained_blobs(str(tmp_path))[3]))
    except reference.UnsupportedModelError as missing:
        pytest.skip(f"the integer reference does not compute this model yet: {missing}")
    path = blobs_csv(tmp_path / "blobs.csv", per_class=60)
    out, rep = tmp_path / "m", tmp_path / "r"
    status = build.main(["--data", str(path), "--hidden", "8", "--activation", "relu", "--optimizer", "adam",
                         "--lr", "0.02", "--epochs", "300", "--no-footprint", "--out", str(out), "--report-dir", str(rep)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "3 classes; task classify" in captured.out and "hold-out accuracy over 36 rows" in captured.out
    assert {p.name for p in rep.iterdir()} == {"report.json", "report.md", "fit.png", "loss.png", "confusion.png"}
    r = json.loads((rep / "report.json").read_text())
    assert r["classification"]["labels"] == ["blue", "green", "red"] and r["model"]["outputs"] == 3
    assert "## Classification (hold-out rows)" in (rep / "report.md").read_text()


def test_integer_labels_unbalanced_and_a_small_holdout_build_and_warn(tmp_path, capsys):
    """One input, classes 0, 1, 2 by interval, 40:12:6 rows: balanced weights, and warnings that
    the hold-out set is too small to mean much."""
    rng = np.random.default_rng(2)
    xs = np.concatenate([rng.uniform(0, 4, 40), rng.uniform(5, 7, 12), rng.uniform(8, 10, 6)])
    ys = [0] * 40 + [1] * 12 + [2] * 6
    path = tmp_path / "ints.csv"
    path.write_text("x,k\n" + "".join(f"{x:.3f},{y}\n" for x, y in zip(xs, ys)))
    out, rep = tmp_path / "m", tmp_path / "r"
    status = build.main(["--data", str(path), "--task", "classify", "--holdout", "0.25", "--hidden", "8",
                         "--activation", "relu", "--optimizer", "adam", "--lr", "0.03", "--epochs", "300",
                         "--no-footprint", "--out", str(out), "--report-dir", str(rep)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "3 classes; task classify (--task classify)" in captured.out
    assert ("hold-out: 0.25 of each class, seed-chosen: 15 rows (10, 3, 2), training 43 rows (30, 9, 4); class "
            "weights 0.478, 1.59, 3.58") in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert any("hold-out set has 15 rows" in w for w in warnings)
    assert any("'1' 3, '2' 2" in w for w in warnings)
    r = json.loads((rep / "report.json").read_text())["classification"]
    assert r["labels"] == ["0", "1", "2"] and r["balance"]["holdout"] == [10, 3, 2]
    assert len(r["warnings"]) == len(warnings)
    assert (rep / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_classifier_refusals_come_before_tensorflow_is_imported(tmp_path):
    bad = tmp_path / "one.csv"
    bad.write_text("x,c\n1,a\n2,a\n")
    cases = [a for a, _ in BAD_ARGUMENTS] + [["--data", str(bad)]]
    refusals.assert_refused_before_tensorflow(cases)


def test_labels_the_font_cannot_draw_give_no_warning_lines():
    """CJK labels: the confusion matrix draws boxes where the default font has no glyph, and the user
    sees no `Glyph ... missing` lines (matplotlib warns once per glyph and draw)."""
    import warnings
    from pipeline.emit import report
    matrix = {"confusion": [[3, 1], [0, 4]], "labels": ["猫", "犬"], "holdout_rows": 8,
              "accuracy": {"float": 0.9, "device": 0.875}}
    def glyph_warnings(draw) -> tuple[bytes, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            picture = draw(matrix, "pets 猫")
        return picture, [str(w.message) for w in caught if "missing from" in str(w.message)]

    picture, shown = glyph_warnings(report.confusion_png)
    same, unquieted = glyph_warnings(report.confusion_png.__wrapped__)
    assert picture.startswith(b"\x89PNG") and picture == same
    assert shown == [] and len(unquieted) >= 2  # matplotlib does warn: the check can fail
