"""Training data: the seed lesson's points, or a person's CSV file."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED_XS = (-1.0, 0.0, 1.0, 2.0, 3.0, 4.0)
LESSON_X = 10.0
"""The lesson's question, outside its training xs."""
SEED_RANGE = (-1.0, 12.0)
"""The range to calibrate for the lesson's question."""


class DataError(ValueError):
    """Bad data: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    source: str
    names: tuple[str, ...]
    default_range: tuple[float, float]

    @property
    def inputs(self) -> int:
        return int(self.x.shape[1])

    @property
    def outputs(self) -> int:
        return int(self.y.shape[1])


def seed() -> Dataset:
    """The lesson's six points on y = 2x - 1."""
    xs = np.array(SEED_XS, dtype=np.float32).reshape(-1, 1)
    return Dataset(xs, 2 * xs - 1, "seed lesson (y = 2x - 1)", ("x", "y"), SEED_RANGE)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def load_csv(path: Path, outputs: int = 1) -> Dataset:
    """Reads rows of numbers; the last `outputs` columns are the targets. An optional first row of names."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{where}: is a directory, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not a UTF-8 text file (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {exc.strerror}") from None
    rows: list[tuple[int, list[float]]] = []
    names: tuple[str, ...] | None = None
    width: int | None = None
    for line_no, cells in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in cells]
        if not cells or all(c == "" for c in cells) or cells[0].startswith("#"):
            continue
        values = [_number(c) for c in cells]
        if width is None:
            width = len(cells)
            if width < outputs + 1:
                raise DataError(f"{where}:{line_no}: {width} column(s); need at least {outputs + 1} "
                                f"({outputs} output column(s) last, inputs before them)")
            if all(v is None for v in values):
                names = tuple(cells)
                continue
        if len(cells) != width:
            raise DataError(f"{where}:{line_no}: {len(cells)} column(s), expected {width} like the first row")
        for column, (cell, value) in enumerate(zip(cells, values), start=1):
            if value is None:
                raise DataError(f"{where}:{line_no}: column {column}: {cell!r} is not a number")
            if not math.isfinite(value):
                raise DataError(f"{where}:{line_no}: column {column}: {cell!r} is not a finite number")
        rows.append((line_no, [float(v) for v in values if v is not None]))
    if width is None:
        raise DataError(f"{where}: empty file: no rows")
    if len(rows) < 2:
        raise DataError(f"{where}: {len(rows)} data row(s); need at least 2")
    table = np.array([r for _, r in rows], dtype=np.float64)
    if np.any(np.abs(table) > np.finfo(np.float32).max):
        line_no = rows[int(np.argmax(np.any(np.abs(table) > np.finfo(np.float32).max, axis=1)))][0]
        raise DataError(f"{where}:{line_no}: a value does not fit a 32-bit float")
    table = table.astype(np.float32)
    x, y = table[:, :-outputs], table[:, -outputs:]
    if names is None:
        inputs = width - outputs
        names = tuple([f"x{i + 1}" if inputs > 1 else "x" for i in range(inputs)] +
                      [f"y{i + 1}" if outputs > 1 else "y" for i in range(outputs)])
    return Dataset(x, y, where, names, (float(x.min()), float(x.max())))
