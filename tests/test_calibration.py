"""Calibration on the data: the int8 output range covers what the model answers on its own rows, so
exact fits of CSVs build with the default tolerance (they saturated when the converter saw only the
input box's corners and uniform samples)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import build

keras = pytest.importorskip("keras")


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savetxt(path, np.hstack([x, y.reshape(len(y), -1)]), delimiter=",", fmt="%.7g")
    return path


def builds(tmp_path: Path, *args: str) -> int:
    return build.main(["-q", "--no-footprint", "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r"),
                       *args])


@pytest.mark.parametrize("case", ["20 inputs", "64 inputs", "2 rows", "one input 1e5 times wider", "1e6 rows"])
def test_an_exact_linear_fit_builds_with_the_default_tolerance(tmp_path, case):
    rng = np.random.default_rng(5)
    if case == "2 rows":
        x = np.array([[0.0], [1.0]])
    elif case == "one input 1e5 times wider":
        x = np.hstack([rng.uniform(-1000, 1000, (3000, 1)), rng.uniform(-0.01, 0.01, (3000, 1))])
    else:
        inputs, rows = {"20 inputs": (20, 2000), "64 inputs": (64, 5000), "1e6 rows": (4, 1_000_000)}[case]
        x = rng.uniform(-1, 1, (rows, inputs))
    w = {"one input 1e5 times wider": np.array([0.002, 30.0])}.get(case, rng.normal(0, 0.5, x.shape[1]))
    data = write_csv(tmp_path / "data.csv", x, x @ w + 0.3)
    assert builds(tmp_path, "--data", str(data)) == 0


def test_a_keras_exact_fit_with_its_data_builds(tmp_path):
    """The issue's --keras case from fixed weights (no training): 20 inputs, y exactly linear."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (2000, 20))
    w = rng.normal(0, 0.5, 20)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(1)])
    model.layers[0].set_weights([w.reshape(20, 1).astype(np.float32), np.array([0.3], np.float32)])
    model.save(tmp_path / "lin.keras")
    data = write_csv(tmp_path / "data.csv", x, x @ w + 0.3)
    assert builds(tmp_path, "--keras", str(tmp_path / "lin.keras"), "--data", str(data)) == 0


def test_a_large_set_calibrates_on_a_sample_and_its_extremes():
    """Past CALIBRATION_DATA_ROWS rows: a spread sample, with the rows where each output is least and
    greatest, wherever they lie in the file."""
    from pipeline.model import quantize
    x = np.linspace(-1, 1, 10_001, dtype=np.float32).reshape(-1, 1)
    x = np.roll(x, 1234, axis=0)  # the extremes off the sample's even spacing
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.layers[0].set_weights([np.array([[1.0, -3.0]], np.float32), np.zeros(2, np.float32)])
    rows = quantize.calibration_rows(model, x)
    assert len(rows) <= quantize.CALIBRATION_DATA_ROWS + 4
    assert rows.min() == -1.0 and rows.max() == 1.0
    assert len(quantize.calibration_rows(model, x[:500])) == 500
