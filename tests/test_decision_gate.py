"""A classifier is judged by what it decides: the device's top class against the float model's on the
data rows (and the hold-out rows of a trained one), not by its probabilities' steps, unless
--tolerance-lsb asks for those. Fixed weights, so the same on every machine."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import build

keras = pytest.importorskip("keras")


def steep(tmp_path: Path, rows: np.ndarray) -> list[str]:
    """Two inputs, a softmax over 100 x1 + 25 x2 and its negation: near the boundary an input's rounding
    step moves a probability by tens of steps, elsewhere nothing."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.layers[0].set_weights([np.array([[100, -100], [25, -25]], np.float32), np.zeros(2, np.float32)])
    model.save(tmp_path / "steep.keras")
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",", fmt="%.6f")
    return ["--no-footprint", "--keras", str(tmp_path / "steep.keras"), "--data", str(tmp_path / "rows.csv"),
            "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")]


def test_probability_steps_are_reported_and_decisions_gated(tmp_path, capsys):
    args = steep(tmp_path, np.random.default_rng(0).uniform(-1, 1, (2000, 2)))
    assert build.main(args) == 0
    printed = capsys.readouterr().out
    steps = float(printed.split(" LSB, reported)")[0].rsplit("(", 1)[1])
    assert steps > 16  # past the steps a classifier of no hidden layer would be held to
    assert "decisions: the device's top class is the float model's on 99.70% of 2000 data rows" in printed
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["check"]["decisions"]["data_agreement"] == pytest.approx(0.997)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["tolerance"]["gate"] == "decisions"

    assert build.main([*args, "--tolerance-lsb", "16"]) == 1  # the steps, when asked for
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: the int8 model is {steps:.2f} output steps") and f"{tmp_path}/rows.csv:" in line


def test_a_classifier_that_decides_otherwise_on_its_data_is_refused(tmp_path, capsys):
    """Rows crowded at the boundary: the device's class leaves the float model's on more than 1% of them."""
    rng = np.random.default_rng(1)
    x1 = rng.uniform(-0.2, 0.2, 2000)
    rows = np.stack([x1, -4 * x1 + rng.uniform(-0.02, 0.02, 2000)], axis=1)
    assert build.main(steep(tmp_path, rows)) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: the device decides as the float model on ")
    assert f"of the data rows (" in line and f"the first {tmp_path}/rows.csv:" in line
    assert line.endswith("a classifier needs 99%, or 2 rows differing at most (or --tolerance-lsb STEPS to judge its "
                         "probabilities instead)")
    assert not (tmp_path / "m").exists()
