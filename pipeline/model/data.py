"""Training data: the seed lesson's points, or a person's CSV file."""
from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.errors import BadInput
from pipeline.int8 import description

SEED_XS = (-1.0, 0.0, 1.0, 2.0, 3.0, 4.0)
LESSON_X = 10.0
"""The lesson's question, outside its training xs."""
SEED_RANGE = (-1.0, 12.0)
"""The range to calibrate for the lesson's question."""

NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""A CSV cell's syntax: sign, digits, fraction, exponent. Not Python's float(), which also takes
'1_0', 'inf', 'nan' and non-ASCII digits."""
_CELL = re.compile(rf"[ \t]*({NUMBER})[ \t]*")
BATCH_ROWS = 4096
"""Rows per training step: the whole data up to this many (the lesson's full batch), a mini-batch beyond."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)


TASKS = ("classify", "regress")
MAX_CLASSES = description.MAX_CLASSES
"""Classes a classifier may have: one int8 output each, and one label each in the device's buffers."""
LABEL_ORDER = "sorted"
"""Classes are numbered in sorted label order (numerically when every label is a number), not
first-seen: the output order then does not change when the file's rows are shuffled."""


class DataError(BadInput, ValueError):
    """Bad data: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray
    source: str
    names: tuple[str, ...]
    default_range: tuple[float, float]
    lines: np.ndarray | None = None
    """Each row's line in the file (1-based), for messages about a row; None for the seed."""
    task: str = "regress"
    labels: tuple[str, ...] = ()
    """A classifier's class labels, in output order (LABEL_ORDER); empty for a regression."""
    classes: np.ndarray | None = None
    """A classifier's class index per row (y is its one-hot encoding); None for a regression."""
    task_reason: str = ""
    """Why the task is what it is, for the build's data line."""

    @property
    def classify(self) -> bool:
        return self.task == "classify"

    @property
    def inputs(self) -> int:
        return int(self.x.shape[1])

    @property
    def outputs(self) -> int:
        return int(self.y.shape[1])

    def where(self, row: int) -> str:
        """'file:line' of a row, or the row's number for data without a file."""
        if self.lines is None:
            return f"{self.source}: row {row + 1}"
        return f"{self.source}:{int(self.lines[row])}"

    def subset(self, rows: np.ndarray) -> Dataset:
        """These rows only, as a data set of their own (the training rows, or the hold-out rows)."""
        x = self.x[rows]
        return replace(self, x=x, y=self.y[rows], default_range=(float(x.min()), float(x.max())),
                       lines=None if self.lines is None else self.lines[rows],
                       classes=None if self.classes is None else self.classes[rows])

    def counts(self) -> np.ndarray:
        """Rows per class, in label order."""
        return np.bincount(self.classes, minlength=len(self.labels))


def seed() -> Dataset:
    """The lesson's six points on y = 2x - 1."""
    xs = np.array(SEED_XS, dtype=np.float32).reshape(-1, 1)
    return Dataset(xs, 2 * xs - 1, "seed lesson (y = 2x - 1)", ("x", "y"), SEED_RANGE)


def regular_file(path: Path, where: str, wanted: str, error: type[BadInput] = DataError) -> None:
    """Refuses in one line a path argument that is not a regular file, judged by stat alone: /dev/zero
    never ends and opening a FIFO would block, so neither may be opened to find out. `where` names the
    argument (a file or `--flag FILE`), `wanted` what to give instead ("a CSV file")."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as exc:
        raise error(f"{where}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{where}: is a directory, not {wanted}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{where}: not a regular file (a device, FIFO or socket); give {wanted}")


def _open(path: Path, where: str):
    """A regular file or a one-line refusal (regular_file), opened for reading."""
    regular_file(path, where, "a CSV file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise DataError(f"{where}: cannot read: {exc.strerror}") from None


def _bad_cells(where: str, line_no: int, cells: list[str], width: int | None) -> DataError:
    """The first problem of a line that failed the whole-line match."""
    if width is not None and len(cells) != width:
        return DataError(f"{where}:{line_no}: {len(cells)} column(s), expected {width} like the first row")
    for column, cell in enumerate(cells, start=1):
        if _CELL.fullmatch(cell) is None:
            text = cell.strip(" \t")
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                return DataError(f"{where}:{line_no}: column {column}: {text!r} is not a finite number")
            return DataError(f"{where}:{line_no}: column {column}: {text!r} is not a number "
                             "(plain decimal: sign, digits, fraction, exponent, as in -1.5e-3)")
    return DataError(f"{where}:{line_no}: unreadable row")


def _decode(raw: bytes, where: str, line_no: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}:{line_no}: not a UTF-8 text file (byte {exc.start + 1} of the line)") from None


def _skipped(line: str) -> bool:
    """Blank lines, lines of empty cells and # comments."""
    stripped = line.strip()
    return not stripped.strip(",") or stripped.startswith("#")


def _row_pattern(width: int) -> re.Pattern[str]:
    cell = rf"[ \t]*{NUMBER}[ \t]*"
    return re.compile(rf"{cell}(?:,{cell}){{{width - 1}}}")


_PLAIN_BYTES = b"0123456789+-.eE, \t\r\n"
_CHUNK_BYTES = 1 << 20


def _fast_chunk(chunk: bytes, width: int) -> np.ndarray | None:
    """A block of whole lines parsed by numpy, or None when the block needs the line-by-line path.

    With only these bytes, numpy's parser accepts exactly the plain decimal syntax; a block with
    anything else (comments, blank lines, a bad cell, a ragged row) is read line by line instead."""
    if chunk.translate(None, _PLAIN_BYTES):
        return None
    lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(io.BytesIO(chunk), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    return table if table.shape == (lines, width) else None


class _Rows:
    """float32 blocks and their line numbers, checked against float32's range block by block."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.tables: list[np.ndarray] = []
        self.lines: list[np.ndarray] = []

    def add(self, table: np.ndarray, lines: np.ndarray) -> None:
        if not len(table):
            return
        big = ~(np.abs(table) <= _FLOAT32_MAX)
        if big.any():
            row, column = np.argwhere(big)[0]
            raise DataError(f"{self.where}:{lines[row]}: column {column + 1}: {table[row, column]:g} does not fit "
                            "a 32-bit float")
        self.tables.append(table.astype(np.float32))
        self.lines.append(lines.astype(np.int32 if lines[-1] < 2**31 else np.int64))

    def count(self) -> int:
        return sum(len(t) for t in self.tables)


def _slow_chunk(rows: _Rows, chunk: bytes, first_line: int, width: int, pattern: re.Pattern[str]) -> None:
    values, numbers = [], []
    for line_no, raw in enumerate(chunk.split(b"\n"), start=first_line):
        line = _decode(raw, rows.where, line_no)
        if pattern.fullmatch(line):
            values.append([float(c) for c in line.split(",")])
            numbers.append(line_no)
        elif not _skipped(line):
            raise _bad_cells(rows.where, line_no, line.split(","), width)
    rows.add(np.array(values, dtype=np.float64).reshape(-1, width), np.array(numbers, dtype=np.int64))


def _cells(line: str, where: str, line_no: int) -> list[str]:
    try:
        return [c.strip(" \t") for c in next(csv.reader([line]))]  # spaces and tabs, as a number's or label's
    except csv.Error as exc:
        problem = ("lines end in a bare carriage return; save the file with LF or CRLF line ends"
                   if "\r" in line else str(exc))
        raise DataError(f"{where}:{line_no}: {problem}") from None


def column_count(path: Path) -> int:
    """Columns of the CSV's first row that is not blank or a comment (its names, or its first data)."""
    where = str(path)
    with _open(path, where) as stream:
        for line_no, raw in enumerate(stream, start=1):
            line = _decode(raw, where, line_no)
            if not _skipped(line):
                return len(_cells(line, where, line_no))
    raise DataError(f"{where}: empty file: no rows")


def load_csv(path: Path, outputs: int = 1, task: str | None = None) -> Dataset:
    """Rows of numbers, or of numbers and a class label last; the last `outputs` columns are the
    targets (none: every column is an input). An optional first row of names.

    The task is `task` when given, else guessed from the first data row: a target that is not a
    number is a class label. Numbers stream in blocks that numpy parses once their bytes are seen
    to be plain numbers, into float32: memory stays near the data as float32."""
    where = str(path)
    names: tuple[str, ...] | None = None
    width: int | None = None
    first: tuple[int, str, bytes, list[str]] | None = None
    with _open(path, where) as stream:
        line_no = 0
        for raw in stream:
            line_no += 1
            line = _decode(raw, where, line_no)
            if _skipped(line):
                continue
            cells = _cells(line, where, line_no)
            if width is None:
                width = len(cells)
                if width < outputs + 1:
                    raise DataError(f"{where}:{line_no}: {width} column(s); need at least {outputs + 1} "
                                    f"({outputs} output column(s) last, inputs before them)")
                if not any(_CELL.fullmatch(c) for c in cells):
                    names = tuple(cells)
                    continue
            first = (line_no, line, raw, cells)
            break
        if width is None:
            raise DataError(f"{where}: empty file: no rows")
        text_target = first is not None and len(first[3]) == width and _CELL.fullmatch(first[3][-1]) is None
        if task is None:
            task = "classify" if outputs == 1 and text_target else "regress"
            reason = (f"line {first[0]}'s target {first[3][-1]!r} is not a number, so it is a class label"
                      if task == "classify" else "the targets are numbers")
        else:
            reason = f"--task {task}"
        if first is None:
            raise DataError(f"{where}: 0 data row(s); need at least 2")
        if task == "classify":
            hint = "" if reason.startswith("--task") else f" (classification: {reason}; --task regress if not)"
            return _load_labelled(stream, where, first, width, names, hint, reason)
        rows = _Rows(where)
        pattern = _row_pattern(width)
        _slow_chunk(rows, first[2].rstrip(b"\r\n"), first[0], width, pattern)
        line_no = first[0]
        carry = b""
        while True:
            block = stream.read(_CHUNK_BYTES)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            chunk, carry = data[:cut], data[cut:]
            if chunk:
                table = _fast_chunk(chunk, width)
                start = line_no + 1
                line_no += chunk.count(b"\n") + (not chunk.endswith(b"\n"))
                if table is not None:
                    rows.add(table, np.arange(start, start + len(table), dtype=np.int64))
                else:
                    _slow_chunk(rows, chunk[:-1] if chunk.endswith(b"\n") else chunk, start, width, pattern)
            if not block:
                break
    count = rows.count()
    if count < 2:
        raise DataError(f"{where}: {count} data row(s); need at least 2")
    table = np.concatenate(rows.tables) if len(rows.tables) > 1 else rows.tables[0]
    rows.tables.clear()
    x, y = (table, table[:, :0]) if outputs == 0 else (table[:, :-outputs], table[:, -outputs:])
    if names is None:
        inputs = width - outputs
        names = tuple([f"x{i + 1}" if inputs > 1 else "x" for i in range(inputs)] +
                      [f"y{i + 1}" if outputs > 1 else "y" for i in range(outputs)])
    return Dataset(x, y, where, names, (float(x.min()), float(x.max())), np.concatenate(rows.lines),
                   task_reason=reason)


_LABEL_BLOCK_ROWS = 65536


def _label_key(labels: list[str]):
    """Sorted order: by value when every label is a number (so 10 follows 9), else by text."""
    if all(_CELL.fullmatch(label) for label in labels):
        return lambda label: (float(label), label)
    return lambda label: label


def _load_labelled(stream, where: str, first: tuple[int, str, bytes, list[str]], width: int,
                   names: tuple[str, ...] | None, hint: str, reason: str) -> Dataset:
    """Numeric inputs and a class label last, line by line: classes become indices as they come,
    one small integer per row rather than a string."""
    rows = _Rows(where)
    index: dict[str, int] = {}
    seen_on: list[int] = []
    classes: list[int] = []
    values: list[list[float]] = []
    numbers: list[int] = []
    pattern = _row_pattern(width - 1)

    def flush() -> None:
        rows.add(np.array(values, dtype=np.float64).reshape(-1, width - 1), np.array(numbers, dtype=np.int64))
        values.clear()
        numbers.clear()

    def take(line_no: int, line: str, cells: list[str] | None) -> None:
        if cells is None:
            cells = line.split(",") if '"' not in line else _cells(line, where, line_no)
        if len(cells) != width:
            raise DataError(f"{where}:{line_no}: {len(cells)} column(s), expected {width} like the first row")
        inputs = cells[:-1]
        if not pattern.fullmatch(",".join(inputs)):
            raise _bad_cells(where, line_no, inputs, None)
        label = description.label_text(cells[-1])
        k = index.get(label)
        if k is None:
            problem = description.label_problem(label)  # the rule --labels keeps too
            if problem:
                raise DataError(f"{where}:{line_no}: column {width}: {problem}{hint if not label else ''}")
            if len(index) == MAX_CLASSES:
                raise DataError(f"{where}:{line_no}: column {width}: {label!r} would be class {MAX_CLASSES + 1}; at "
                                f"most {MAX_CLASSES} classes{hint}")
            k = index[label] = len(index)
            seen_on.append(line_no)
        classes.append(k)
        values.append([float(c) for c in inputs])
        numbers.append(line_no)
        if len(values) == _LABEL_BLOCK_ROWS:
            flush()

    line_no = first[0]
    take(line_no, first[1], first[3])
    for raw in stream:
        line_no += 1
        line = _decode(raw, where, line_no)
        if not _skipped(line):
            take(line_no, line, None)
    flush()
    count = rows.count()
    if count < 2:
        raise DataError(f"{where}: {count} data row(s); need at least 2")
    found = list(index)
    if len(found) == 1:
        raise DataError(f"{where}:{seen_on[0]}: every row has the class {found[0]!r}; a classifier needs at least 2 "
                        f"classes{hint}")
    by_first = np.array(classes, dtype=np.int32)
    counts = np.bincount(by_first, minlength=len(found))
    if (counts < 2).any():
        lonely = int(np.flatnonzero(counts < 2)[0])
        raise DataError(f"{where}:{seen_on[lonely]}: class {found[lonely]!r} has this row only; each class needs at "
                        f"least 2 rows (to train on and to hold out){hint}")
    labels = sorted(found, key=_label_key(found))
    order = np.array([labels.index(label) for label in found], dtype=np.int32)
    row_classes = order[by_first]
    x = np.concatenate(rows.tables) if len(rows.tables) > 1 else rows.tables[0]
    rows.tables.clear()
    y = np.eye(len(labels), dtype=np.float32)[row_classes]
    if names is None:
        inputs = width - 1
        names = tuple([f"x{i + 1}" if inputs > 1 else "x" for i in range(inputs)] + ["class"])
    return Dataset(x, y, where, names, (float(x.min()), float(x.max())), np.concatenate(rows.lines),
                   task="classify", labels=tuple(labels), classes=row_classes, task_reason=reason)


HOLDOUT = 0.2
"""A classifier's share of rows held out of training, per class, to measure its accuracy on."""
HOLDOUT_MIN_ROWS = 30
"""Below this, one row moves the hold-out accuracy by more than 3 points: warn."""
HOLDOUT_MIN_PER_CLASS = 5
"""Below this, a class's recall on the hold-out set is a few coin flips: warn."""


def holdout_split(classes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and hold-out row indices (each sorted), stratified: every class keeps its share in
    both, at least one row in each. Seeded by the build's --seed, so the same arguments hold out
    the same rows."""
    rng = np.random.default_rng([seed, 0x686f6c64])
    held: list[np.ndarray] = []
    for k in range(int(classes.max()) + 1):
        rows = np.flatnonzero(classes == k)
        if not len(rows):
            continue
        take = min(max(int(round(fraction * len(rows))), 1), len(rows) - 1)
        held.append(rng.permutation(rows)[:take])
    hold = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(len(classes)), hold, assume_unique=True)
    return train, hold


def class_weights(counts: np.ndarray) -> np.ndarray:
    """'Balanced' weights, rows / (classes * rows of the class): each class weighs the same in the
    loss, so a rare class is not traded away for accuracy on a common one (1.0 each when balanced)."""
    counts = np.asarray(counts, dtype=np.float64)
    return counts.sum() / (len(counts) * np.maximum(counts, 1))


def holdout_warnings(labels: tuple[str, ...], counts: np.ndarray) -> list[str]:
    """Why the hold-out figures may mean little: too few rows, or a class with too few."""
    out = []
    total = int(counts.sum())
    if total < HOLDOUT_MIN_ROWS:
        out.append(f"the hold-out set has {total} rows: one row moves its accuracy by {100 / total:.1f} points; "
                   "give more data or a larger --holdout")
    few = [f"{labels[k]!r} {int(n)}" for k, n in enumerate(counts) if n < HOLDOUT_MIN_PER_CLASS]
    if few:
        out.append(f"hold-out rows per class below {HOLDOUT_MIN_PER_CLASS}: {', '.join(few)}; their recall "
                   "means little (give more data or a larger --holdout)")
    return out


INPUT_LIMIT = 1e30
"""The calibrated range, given or taken from the data, lies within ±INPUT_LIMIT."""


def range_problem(dataset: Dataset) -> str | None:
    """Why the data's own min..max cannot be the calibrated range, naming the column and the row."""
    big = np.abs(dataset.x) >= INPUT_LIMIT
    if big.any():
        row, column = (int(v) for v in np.argwhere(big)[0])
        return (f"{dataset.where(row)}: column {column + 1} ({dataset.names[column]}): input "
                f"{float(dataset.x[row, column]):g} is too large for an int8 input range (|x| < {INPUT_LIMIT:g})")
    lo, hi = dataset.default_range
    if not lo < hi:
        named = ", ".join(f"column {k + 1} ({n})" for k, n in enumerate(dataset.names[:dataset.inputs]))
        return (f"{dataset.source}: every input is {lo:g} ({named} constant): the int8 input needs a range; "
                "give --input-range LO HI")
    return None


def input_center(input_range: tuple[float, float]) -> float:
    """The value a trained model's inputs are centered on (the device subtracts it before quantizing), or 0.

    TFLite's int8 input range must hold 0, so a range lying far from it ([99, 101]) would get a step
    fitted to [0, 101]. The rule: where 0 lies outside [lo, hi] by more than its width (lo and hi of one
    sign, min(|lo|, |hi|) > hi - lo), the center is the midpoint rounded to a tenth of the width's leading
    decimal place (100 for [99, 101]), as the shortest decimal of its float32: the firmware's literal."""
    lo, hi = (float(v) for v in input_range)
    width = hi - lo
    if lo * hi <= 0 or not width > 0 or min(abs(lo), abs(hi)) <= width:
        return 0.0
    middle = round((lo + hi) / 2, 1 - math.floor(math.log10(width)))
    return float(str(np.float32(middle)))


def sample_rows(rows: int, limit: int) -> np.ndarray:
    """Indices of at most `limit` rows spread evenly over the data, first and last included."""
    if rows <= limit:
        return np.arange(rows)
    return np.unique(np.linspace(0, rows - 1, limit).round().astype(np.int64))
