"""model.json read as input, not trusted: every field the device side uses is checked here,
once, before anything uses it, and a bad one is refused in one line naming the field.

predict, verify and footprint read the file through pipeline.device.deployed.load, which calls
check(); the rest of the device side then meets only values it can compute with: int8 codes
in -128..127, positive finite scales, a range whose low end is below its high end, finite
inputs that the device's float32 quantization (x / scale) can take, and counts that agree.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import BadInput
from pipeline.int8.description import CLASSIFY, REGRESS, check_labels
from pipeline.int8.sweep import ALL_CODES

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_RANDOM_ROWS = 1 << 20
"""The most seeded random sweep rows model.json may ask verify to make (pipeline.int8.sweep)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DeployedModelError(BadInput, RuntimeError):
    """The emitted model files are missing, malformed or disagree with each other."""


class _Bad(Exception):
    """One field's problem, before the file's name is put in front of it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)


def past_range(lo: float, hi: float) -> float:
    """The input verify types just past the calibrated range, to see `clipped` appear there."""
    return hi + max(1.0, (hi - lo) / 4)


def parse(raw: bytes, where: Path) -> dict[str, Any]:
    """model.json's bytes -> its checked content; DeployedModelError `<where>: <field>: <problem>`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DeployedModelError(f"{where}: not UTF-8 text (byte {error.start})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as error:
        raise DeployedModelError(f"{where}: not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise DeployedModelError(f"{where}: not valid model.json: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise DeployedModelError(f"{where}: not valid model.json: an integer too long to read") from None
    try:
        check(meta)
    except _Bad as bad:
        raise DeployedModelError(f"{where}: {bad}") from None
    return meta


def check(meta: Any) -> None:
    """Raises _Bad naming the first field the device side could not use as it stands."""
    if not isinstance(meta, dict):
        raise _Bad("", f"the top level is {_kind(meta)}, not an object")
    _text(_field(meta, "name"), "name")
    sha = _field(meta, "sha256")
    if not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise _Bad("sha256", f"{_shown(sha)} is not 64 lowercase hex digits")
    if "id" in meta and meta["id"] != sha[:12]:
        raise _Bad("id", f"{_shown(meta['id'])} is not the first 12 digits of sha256 ({sha[:12]})")
    inputs = _int(_field(meta, "inputs"), "inputs", 1, None)
    outputs = _int(_field(meta, "outputs"), "outputs", 1, None)
    scales = {}
    for side in ("input", "output"):
        affine = _object(_field(meta, side), side)
        scales[side] = _scale(_field(affine, "scale", side), f"{side}.scale")
        _int(_field(affine, "zero_point", side), f"{side}.zero_point", -128, 127)
    center = _float32(meta.get("input_center", 0.0), "input_center")
    _input_range(_field(meta, "input_range"), scales["input"], center)
    ops = _list(_field(meta, "ops"), "ops")
    for k, op in enumerate(ops):
        _text(op, f"ops[{k}]")
    if not isinstance(_field(meta, "per_channel"), bool):
        raise _Bad("per_channel", f"{_shown(meta['per_channel'])} is not true or false")
    _int(_field(meta, "arena_bytes"), "arena_bytes", 0, None)
    _int(_field(meta, "arena_measured_bytes"), "arena_measured_bytes", 0, None)
    tolerance = _field(_object(_field(meta, "tolerance"), "tolerance"), "max_lsb", "tolerance")
    if tolerance is not None:
        _number(tolerance, "tolerance.max_lsb", minimum=0.0)
    gate = meta["tolerance"].get("gate", "steps")
    if gate not in ("steps", "decisions"):
        raise _Bad("tolerance.gate", f"{_shown(gate)} is neither 'steps' nor 'decisions'")
    task = meta.get("task", REGRESS)
    if task not in (REGRESS, CLASSIFY):
        raise _Bad("task", f"{_shown(task)} is neither {REGRESS!r} nor {CLASSIFY!r}")
    labels = _list(meta.get("labels", []), "labels")
    for k, label in enumerate(labels):
        _text(label, f"labels[{k}]")
    if task == CLASSIFY:
        try:
            check_labels(labels, outputs)
        except ValueError as error:
            raise _Bad("labels", str(error)) from None
    elif labels:
        raise _Bad("labels", "a regression model has no labels")
    if "probes" in meta:
        _rows(meta["probes"], "probes", inputs, lambda v, where: _quantizable(v, where, scales["input"], center))
    _sweep(_object(_field(meta, "sweep"), "sweep"), inputs, outputs, tolerance is not None)
    if "holdout" in meta:
        _holdout(meta["holdout"], task, inputs, outputs, scales["input"], center)


def _sweep(sweep: dict[str, Any], inputs: int, outputs: int, judged: bool) -> int:
    """sweep.codes, .random, .float and .board; returns how many rows verify sends."""
    codes = _field(sweep, "codes", "sweep")
    if codes == ALL_CODES:
        if inputs != 1:
            raise _Bad("sweep.codes", f'"{ALL_CODES}" needs a one-input model, not {inputs} inputs')
        listed = 256
    elif isinstance(codes, list):
        listed = len(_rows(codes, "sweep.codes", inputs, _code))
    else:
        raise _Bad("sweep.codes", f'{_shown(codes)} is neither "{ALL_CODES}" nor a list of rows')
    random = sweep.get("random")
    count = 0
    if random is not None:
        random = _object(random, "sweep.random")
        _int(_field(random, "seed", "sweep.random"), "sweep.random.seed", 0, None)
        count = _int(_field(random, "rows", "sweep.random"), "sweep.random.rows", 0, MAX_RANDOM_ROWS)
    rows = listed + count
    if rows == 0:
        raise _Bad("sweep", "no rows: verify would have nothing to send")
    floats = _field(sweep, "float", "sweep")
    if (floats is None) == judged:
        raise _Bad("sweep.float", "null while tolerance.max_lsb is set" if judged
                   else "given while tolerance.max_lsb is null: one goes with the other")
    if floats is not None:
        got = len(_rows(floats, "sweep.float", outputs, _float32))
        if got != rows:
            raise _Bad("sweep.float", f"{got} rows for the sweep's {rows}")
    board = sweep.get("board")
    if board:
        board = _object(board, "sweep.board")
        indices = _list(_field(board, "rows", "sweep.board"), "sweep.board.rows")
        for k, index in enumerate(indices):
            _int(index, f"sweep.board.rows[{k}]", 0, rows - 1)
        if len(set(indices)) != len(indices):
            raise _Bad("sweep.board.rows", "a row repeats")
        answers = _rows(_field(board, "outputs", "sweep.board"), "sweep.board.outputs", outputs, _code)
        if len(answers) != len(indices):
            raise _Bad("sweep.board.outputs", f"{len(answers)} rows for {len(indices)} board rows")
    return rows


def _holdout(holdout: Any, task: str, inputs: int, outputs: int, input_scale: float, center: float) -> None:
    holdout = _object(holdout, "holdout")
    if task != CLASSIFY:
        raise _Bad("holdout", "hold-out rows belong to a classifier; this model regresses")
    x = _rows(_field(holdout, "x", "holdout"), "holdout.x", inputs,
              lambda v, where: _quantizable(v, where, input_scale, center))
    labels = _list(_field(holdout, "labels", "holdout"), "holdout.labels")
    for k, label in enumerate(labels):
        _int(label, f"holdout.labels[{k}]", 0, outputs - 1)
    if len(labels) != len(x):
        raise _Bad("holdout.labels", f"{len(labels)} labels for {len(x)} rows of holdout.x")


def _input_range(value: Any, scale: float, center: float) -> None:
    pair = _list(value, "input_range")
    if len(pair) != 2:
        raise _Bad("input_range", f"{_shown(value)} is not [low, high]")
    lo, hi = (_quantizable(v, f"input_range[{k}]", scale, center) for k, v in enumerate(pair))
    if not np.float32(lo) < np.float32(hi):
        raise _Bad("input_range", f"{_shown(value)}: the low end is not below the high end")
    with np.errstate(over="ignore"):
        past = past_range(lo, hi)
        if not (math.isfinite(past) and abs(past) <= FLOAT32_MAX and _fits(past, scale, center)):
            raise _Bad("input_range", f"{_shown(value)}: too wide for float32 inputs (verify types {past:g} "
                                      "just past it, which the device cannot quantize)")


# ---- one value ---------------------------------------------------------------------------------

def _field(obj: dict[str, Any], key: str, parent: str = "") -> Any:
    if key not in obj:
        raise _Bad(f"{parent}.{key}" if parent else key, "missing")
    return obj[key]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(where, f"{_shown(value)} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(where, f"{_shown(value)} is not a list")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(where, f"{_shown(value)} is not a non-empty string")
    return value


def _int(value: Any, where: str, lo: int | None, hi: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(where, f"{_shown(value)} is not an integer")
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise _Bad(where, f"{_shown(value)} is outside {lo}..{hi}")
    if lo is not None and value < lo:
        raise _Bad(where, f"{_shown(value)} is below {lo}")
    return value


def _number(value: Any, where: str, minimum: float | None = None) -> float:
    """A finite JSON number (NaN and Infinity, which Python's json reads, are not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Bad(where, f"{_shown(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _Bad(where, f"{_shown(value)} is not a finite number")
    if minimum is not None and number < minimum:
        raise _Bad(where, f"{_shown(value)} is below {minimum:g}")
    return number


def _float32(value: Any, where: str) -> float:
    """A finite number that stays finite in float32, as the device side compares values."""
    number = _number(value, where)
    if abs(number) > FLOAT32_MAX:
        raise _Bad(where, f"{_shown(value)} is beyond float32's range")
    return number


def _scale(value: Any, where: str) -> float:
    """A quantization scale: positive and finite in float32, and small enough that 255 steps of it are too."""
    number = _number(value, where)
    if not (0 < number <= FLOAT32_MAX / 256 and np.float32(number) > 0):
        raise _Bad(where, f"{_shown(value)} is not a positive finite float32 scale")
    return number


def _fits(value: float, scale: float, center: float = 0.0) -> bool:
    """(value - center) / scale, computed in float32 as the device quantizes, stays finite."""
    if abs(value) > FLOAT32_MAX:
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite((np.float32(value) - np.float32(center)) / np.float32(scale)))


def _quantizable(value: Any, where: str, scale: float, center: float = 0.0) -> float:
    number = _number(value, where)
    if not _fits(number, scale, center):
        formula = "(x - input_center) / input.scale" if center else "x / input.scale"
        raise _Bad(where, f"{_shown(value)} is too large for the device's float32 quantization ({formula})")
    return number


def _code(value: Any, where: str) -> int:
    return _int(value, where, -128, 127)


def _rows(value: Any, where: str, width: int, cell: Callable[[Any, str], Any]) -> list[list[Any]]:
    """A list of rows of `width` values each, every value checked by cell."""
    rows = _list(value, where)
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise _Bad(f"{where}[{r}]", f"{_shown(row)} is not a row of {width} value(s)")
        for c, item in enumerate(row):
            cell(item, f"{where}[{r}][{c}]")
    return rows


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(value), "a number")


def _shown(value: Any) -> str:
    """A value as the file spells it, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # an integer of more digits than Python prints
        text = "a number too long to show"
    return text if len(text) <= 40 else text[:37] + "..."
