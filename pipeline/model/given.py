"""What a given model (--keras or --tflite) takes from the arguments, checked against the model: the
rows it is calibrated and judged on, its class labels and its tolerance. No training arguments apply."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import BadInput
from pipeline.int8 import description
from pipeline.int8.tflite_model import TfliteModel
from pipeline.model import check, data as data_stage

JUDGED_DATA_ROWS = 2048
"""Rows of --data the float-vs-int8 figures are computed on (spread evenly over the file)."""
RANGE_ROWS = 256
"""Points of the range that stand in for data where none was given."""


class ArgumentError(BadInput, ValueError):
    """Arguments that do not fit the given model."""


@dataclass
class Given:
    """A model trained elsewhere as objects: read from its files by the command line (stages.read_given),
    or handed over by pipeline.api; the stages are the same either way."""

    where: str
    """What messages name it by: `--keras FILE.keras`, `--tflite FILE.tflite`, or the API's argument."""
    name: str
    """The model's name in its files (a file's stem)."""
    source: str
    """Where it came from, for the report: its path, or the API's argument."""
    keras: Any = None
    """A Keras model (load.KerasModel), or None."""
    int8: Any = None
    """An int8 flatbuffer taken as it is (load.Int8File), or None."""
    data: data_stage.Dataset | None = None
    """Its rows: calibration for a Keras model, and the rows both are judged on."""
    float_model: tuple[Callable[[Any], Any], str] | None = None
    """An int8 model's float model and its name, or None."""

    @property
    def width(self) -> int:
        return self.keras.width if self.keras is not None else int(np.prod(self.int8.model.input.shape[1:]))


def rows(path: Path, width: int) -> data_stage.Dataset:
    """--data for a given model: each row its `width` inputs, then optionally one target or label (unused)."""
    columns = data_stage.column_count(path)
    if columns == width:
        return data_stage.load_csv(path, 0, "regress")
    if columns == width + 1:
        return data_stage.load_csv(path, 1, None)
    raise ArgumentError(f"--data {path}: {columns} column(s) a row; the model takes {width} input(s): give "
                        f"{width} columns (its inputs), or {width + 1} (its inputs, then a target or label, not used)")


def rows_of(x: np.ndarray, width: int, source: str) -> data_stage.Dataset:
    """Rows handed over as an array (pipeline.api): each row the model's `width` inputs, finite."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{source}: not an array of numbers ({exc})") from None
    if x.ndim == 0 or len(x) == 0 or x.size % len(x) or x.size // len(x) != width:
        raise ArgumentError(f"{source}: rows of shape {x.shape[1:] if x.ndim else ()} ({x.size // max(len(x), 1) if x.ndim else 1} "
                            f"values); the model takes {width} input(s) a row")
    x = x.reshape(len(x), width)
    bad = ~np.isfinite(x)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ArgumentError(f"{source}: row {row + 1}, input {column + 1} is {x[row, column]}, not a finite number")
    names = tuple("x" if width == 1 else f"x{k + 1}" for k in range(width))
    return data_stage.Dataset(x.astype(np.float32), np.zeros((len(x), 0), np.float32), source, names,
                              (float(x.min()), float(x.max())))


def judged_rows(data: data_stage.Dataset | None, width: int, input_range: tuple[float, float]) -> data_stage.Dataset:
    """The rows the check judges the model on: --data's, spread evenly, or points of the range without it."""
    judged = data if data is not None else _range_rows(width, *input_range)
    return judged.subset(data_stage.sample_rows(len(judged.x), JUDGED_DATA_ROWS))


def _range_rows(width: int, lo: float, hi: float) -> data_stage.Dataset:
    if width == 1:
        x = np.linspace(lo, hi, RANGE_ROWS, dtype=np.float32).reshape(-1, 1)
    else:
        x = np.random.default_rng(3).uniform(lo, hi, size=(RANGE_ROWS, width)).astype(np.float32)
    names = tuple("x" if width == 1 else f"x{k + 1}" for k in range(width))
    return data_stage.Dataset(x, np.zeros((len(x), 0), np.float32), f"the range [{lo:g}, {hi:g}]", names, (lo, hi))


def keras_range(source: str, width: int, data: data_stage.Dataset | None,
                given: tuple[float, float] | None) -> tuple[float, float]:
    """A Keras model's calibrated range: --input-range (holding the data), or the data's own."""
    if data is None and given is None:
        raise ArgumentError(f"{source}: give --data FILE.csv (the model's inputs, to calibrate on)"
                            + (" or --input-range LO HI" if width == 1 else f"; a model of {width} inputs needs data"))
    if data is None and width != 1:
        raise ArgumentError(f"{source}: --input-range calibrates a one-input model; this one takes {width} inputs: "
                            "give --data FILE.csv")
    if given is None:
        return data.default_range
    if data is not None:
        outside = (data.x < given[0]) | (data.x > given[1])
        if outside.any():
            row = int(outside.any(axis=1).argmax())
            raise ArgumentError(f"--input-range {given[0]:g} {given[1]:g} does not contain the data: {data.where(row)}")
    return given


def tflite_range(tfl: TfliteModel, given: tuple[float, float] | None) -> tuple[float, float]:
    """An int8 model's input range: its input quantization's, which --input-range cannot change."""
    scale, zp = float(tfl.input.scales[0]), int(tfl.input.zero_points[0])
    input_range = ((-128 - zp) * scale, (127 - zp) * scale)
    if given:
        raise ArgumentError("--input-range does not apply to --tflite: an int8 model's input range is its own "
                            f"quantization ([{input_range[0]:g}, {input_range[1]:g}] for this one)")
    return input_range


def fed(shape: tuple[int, ...]) -> str:
    """How a many-dimensional input is fed, for the model line."""
    return f" ({int(np.prod(shape))} values, fed row-major)" if len(shape) > 1 else ""


def is_classifier(tfl: TfliteModel) -> bool:
    return bool(tfl.operators) and tfl.operators[-1].op == "SOFTMAX"


def tolerance(tolerance_lsb: float | None, tfl: TfliteModel, classify: bool) -> float:
    """--tolerance-lsb, or the trained models' default for as many hidden layers as the model has."""
    if tolerance_lsb:
        return tolerance_lsb
    layers = sum(op.op in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") for op in tfl.operators)
    hidden = tuple(range(max(layers - 1, 0)))
    return check.classify_tolerance_lsb(hidden) if classify else check.default_tolerance_lsb(hidden)


def labels(given: str | None, outputs: int, classify: bool) -> tuple[str, ...]:
    """--labels under description.LABEL_RULE, the rule a CSV's label column keeps: each item without
    the spaces around it; `--labels ''` names no labels and a model that is no classifier has none to
    name, so both are refused rather than ignored. Without the flag a classifier's labels are 0, 1, ..."""
    if given is not None and not classify:
        raise ArgumentError(f"--labels {given!r}: the model does not end in SOFTMAX, so it is not a classifier and "
                            "has no classes to name; leave --labels out")
    if not classify:
        return ()
    if given is not None and not description.label_text(given):
        raise ArgumentError(f"--labels {given!r}: no labels given; name the model's {outputs} classes in output "
                            "order, comma-separated (or leave --labels out for 0, 1, ...)")
    named = (tuple(description.label_text(item) for item in given.split(",")) if given is not None
             else tuple(str(k) for k in range(outputs)))
    try:
        description.check_labels(named, outputs)
    except ValueError as bad:
        raise ArgumentError(f"{f'--labels {given!r}' if given is not None else 'the model'}: {bad}") from None
    return named
