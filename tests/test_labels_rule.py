"""One rule for a class label, whether given with --labels or in a CSV's label column
(description.LABEL_RULE): each refusal is one exact line and exit status 2, with nothing written,
and what one way accepts the other accepts too."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tflite_writer as w
from pipeline import build
from pipeline.int8 import description
from pipeline.model import data


def _dense(classes: int) -> bytes:
    """4 inputs to `classes` outputs, written from fixed integers; classes 0: no SOFTMAX (a regression)."""
    rng = np.random.default_rng(5)
    units = max(classes, 1)
    layer = (rng.integers(-60, 60, size=(units, 4)).astype(np.int8), rng.integers(-300, 300, size=units).astype(np.int32),
             0.2, 3, "NONE")
    return w.dense_chain([layer], 0.05, -2, classes=classes > 0)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("labels")
    paths = {"three": folder / "three.tflite", "regression": folder / "regression.tflite"}
    paths["three"].write_bytes(_dense(3))
    paths["regression"].write_bytes(_dense(0))
    return paths


def _build(capsys, tmp_path: Path, args: list[str]) -> tuple[int, str]:
    out = tmp_path / "out"
    status = build.main(["-q", "--no-footprint", *args, "--out", str(out / "model"), "--report-dir", str(out / "report")])
    err = capsys.readouterr().err
    if status != 0:
        assert not out.exists(), "a refused build wrote files"
    return status, err


FLAG_REFUSALS = [
    ("empty", "", "--labels '': no labels given; name the model's 3 classes in output order, comma-separated "
                  "(or leave --labels out for 0, 1, ...)"),
    ("spaces only", " \t ", "--labels ' \\t ': no labels given; name the model's 3 classes in output order, "
                            "comma-separated (or leave --labels out for 0, 1, ...)"),
    ("an empty item", "a,,c", "--labels 'a,,c': label 2: empty class label"),
    ("a blank item", "a, ,c", "--labels 'a, ,c': label 2: empty class label"),
    ("the same after stripping", "a, a,a ", "--labels 'a, a,a ': label 1: class label 'a' is given 3 times; each class "
                                            "needs its own"),
    ("a tab inside", "a\tb,c,d", "--labels 'a\\tb,c,d': label 1: class label 'a\\tb' holds a control character (U+0009)"),
    ("a newline inside", "a,b\nc,d", "--labels 'a,b\\nc,d': label 2: class label 'b\\nc' holds a control character "
                                     "(U+000A)"),
    ("DEL", "a,b\x7f,c", "--labels 'a,b\\x7f,c': label 2: class label 'b\\x7f' holds a control character (U+007F)"),
    ("a no-break space", "a,b\u00a0c,d", "--labels 'a,b\\xa0c,d': label 2: class label 'b\\xa0c' holds U+00A0, a line "
                                         "break or space other than ' '"),
    ("not UTF-8", "a,\udcff,c", "--labels 'a,\\udcff,c': label 2: class label '\\udcff' is not UTF-8 text"),
    ("too few", "a,b", "--labels 'a,b': 2 label(s) for the model's 3 classes"),
    ("too many", "a,b,c,d", "--labels 'a,b,c,d': 4 label(s) for the model's 3 classes"),
    ("too long", "a,b," + "\u00e9" * 25, "--labels 'a,b," + "\u00e9" * 25 + "': label 3: class label '" + "\u00e9" * 25
     + "' is 150 bytes as the device sends it (%C3%A9%C3%A9%C3%A9%C...); at most 48"),
]


@pytest.mark.parametrize("given,message", [c[1:] for c in FLAG_REFUSALS], ids=[c[0] for c in FLAG_REFUSALS])
def test_a_bad_labels_flag_is_one_line(models, tmp_path, capsys, given, message):
    status, err = _build(capsys, tmp_path, ["--tflite", str(models["three"]), "--labels", given])
    assert (status, err) == (2, f"error: {message}\n")


def test_labels_for_a_model_with_no_classes_are_refused(models, tmp_path, capsys):
    status, err = _build(capsys, tmp_path, ["--tflite", str(models["regression"]), "--labels", "a,b"])
    assert (status, err) == (2, "error: --labels 'a,b': the model does not end in SOFTMAX, so it is not a classifier "
                                "and has no classes to name; leave --labels out\n")
    status, err = _build(capsys, tmp_path, ["--labels", ""])
    assert (status, err) == (2, "error: --labels goes with --keras or --tflite: a trained classifier's labels come from "
                                "its data\n")


def test_labels_are_stripped_and_may_hold_spaces_and_utf8(models, tmp_path, capsys):
    status, err = _build(capsys, tmp_path, ["--tflite", str(models["three"]), "--labels", " red apple ,\tcaf\u00e9, 7%"])
    assert status == 0, err
    meta = json.loads((tmp_path / "out" / "model" / "model.json").read_text())
    assert meta["labels"] == ["red apple", "caf\u00e9", "7%"]
    info = (tmp_path / "out" / "model" / "model_info.h").read_text()
    assert '#define MODEL_LABELS(LABEL) LABEL("red%20apple") LABEL("caf%C3%A9") LABEL("7%25")\n' in info


# ---- the CSV's label column: the same rule ---------------------------------------------------------------

GUESSED = " (classification: line 2's target 'a' is not a number, so it is a class label; --task regress if not)"
CSV_REFUSALS = [
    ("empty", "x,y,c\n1,2,a\n2,3,b\n3,4,\n", ":4: column 3: empty class label" + GUESSED),
    ("blank quoted", "x,y,c\n1,2,a\n2,3,b\n3,4,\" \t \"\n", ":4: column 3: empty class label" + GUESSED),
    ("a tab inside", "x,y,c\n1,2,a\n2,3,a\tb\n", ":3: column 3: class label 'a\\tb' holds a control character (U+0009)"),
    ("a tab inside, quoted", "x,y,c\n1,2,a\n2,3,\"a\tb\"\n",
     ":3: column 3: class label 'a\\tb' holds a control character (U+0009)"),
    ("a newline inside, quoted", "x,y,c\n1,2,a\n2,3,\"b\nc\"\n", ":4: 1 column(s), expected 3 like the first row"),
    ("a form feed", "x,y,c\n1,2,a\n2,3,b\x0c\n", ":3: column 3: class label 'b\\x0c' holds a control character (U+000C)"),
    ("DEL", "x,y,c\n1,2,a\n2,3,b\x7f\n", ":3: column 3: class label 'b\\x7f' holds a control character (U+007F)"),
    ("a no-break space", "x,y,c\n1,2,a\n2,3,b\u00a0c\n",
     ":3: column 3: class label 'b\\xa0c' holds U+00A0, a line break or space other than ' '"),
    ("a comma, quoted", "x,y,c\n1,2,a\n2,3,\"b,c\"\n",
     ":3: column 3: class label 'b,c' holds a comma (commas separate the labels of --labels)"),
    ("too long", "x,y,c\n1,2,a\n2,3," + "\u00e9" * 25 + "\n", ":3: column 3: class label '" + "\u00e9" * 25
     + "' is 150 bytes as the device sends it (%C3%A9%C3%A9%C3%A9%C...); at most 48"),
]


@pytest.mark.parametrize("content,message", [c[1:] for c in CSV_REFUSALS], ids=[c[0] for c in CSV_REFUSALS])
def test_a_bad_csv_label_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    status, err = _build(capsys, tmp_path, ["--data", str(path)])
    assert (status, err) == (2, f"error: {path}{message}\n")  # a quoted newline: each line is a row, so it breaks


def test_csv_labels_are_stripped_so_spaced_copies_are_one_class(tmp_path):
    path = tmp_path / "spaced.csv"
    path.write_text("x,c\n1, a\n2,a \n3,\" a\t\"\n4,red apple\n5,\tred apple\n6,caf\u00e9\n7,caf\u00e9 \n")
    loaded = data.load_csv(path)
    assert loaded.labels == ("a", "caf\u00e9", "red apple")
    assert loaded.classes.tolist() == [0, 0, 0, 2, 2, 1, 1]


def test_both_ways_take_the_same_labels():
    """Every label the CSV reader accepted is one --labels can give, and the reverse: the rule is one function."""
    for given in (" a ", "red apple", "caf\u00e9", "7%", "??=", 'say "hi"', "a\\b"):
        assert description.label_problem(description.label_text(given)) is None, given
    for given in ("", "a\tb", "a,b", "a\nb", "\udcff", "a\u2028b"):
        assert description.label_problem(description.label_text(given)) is not None, given
    assert description.label_problem("a\u2028b") == "class label 'a\\u2028b' holds U+2028, a line break or space other than ' '"
