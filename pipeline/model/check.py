"""Keras float vs TFLM int8 vs the integer reference: agreement, error figures, and a verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import keras

from pipeline.int8 import metrics
from pipeline.int8 import oracle
from pipeline.int8 import quant
from pipeline.int8 import reference
from pipeline.model.data import LESSON_X, SEED_XS, Dataset
from pipeline.int8.tflite_model import TfliteModel
from pipeline.errors import PipelineError

DEFAULT_TOLERANCE_LSB = 4.0
"""One Dense layer: input and output rounding cost about one output step each, twice that allowed."""
TOLERANCE_PER_HIDDEN_LAYER = 12.0
"""Each hidden layer rounds its activations (and its per-tensor weights) to int8. Measured worst,
inside the calibrated range: 1.1 steps with no hidden layer, 7.1, 21.5 and 16.9 with 1, 2 and 3."""

UNDERFIT_UNEXPLAINED = 0.1
"""Warn when the float model leaves more than this share of y's variance unexplained (1 - R^2).
Measured on the README's noisy sine: fitted networks leave 0.02 to 0.08 (the noise alone is
0.02), networks stuck near a line 0.29 to 0.33, one neuron 0.40; the lesson's line 0.0000."""

PROBE_QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


class CheckError(PipelineError, ValueError):
    """The int8 model does not compute what Python computes."""


def default_tolerance_lsb(hidden: Sequence[int]) -> float:
    """Float-vs-int8 error allowed by default, in output steps: 4 + 12 per hidden layer (4, 16, 28, 40).

    Input and output rounding cost about one step each; each hidden layer rounds its
    activations to int8, and the layers after it carry that error to the output. Measured
    inside the calibrated range over seeds and widths 8..64 (the width made no difference)."""
    return DEFAULT_TOLERANCE_LSB + TOLERANCE_PER_HIDDEN_LAYER * len(hidden)


@dataclass
class CheckResult:
    sweep_codes: np.ndarray
    sweep_float: np.ndarray
    sweep_int8: np.ndarray
    tflm_checked: bool
    mismatches: int
    errors: dict[str, float]
    sweep_errors: dict[str, float]
    points: list[dict[str, Any]] = field(default_factory=list)
    curve: dict[str, np.ndarray] = field(default_factory=dict)
    tolerance_lsb: float = DEFAULT_TOLERANCE_LSB
    probes: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    lesson_x: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def lesson(self) -> dict[str, Any] | None:
        """The lesson's question, x = 10, answered in float and in int8 (the seed's model only)."""
        if self.lesson_x is None:
            return None
        point = next(p for p in self.points if p["x"] == [self.lesson_x])
        return {"x": self.lesson_x, "float": point["float"][0], "int8": point["int8"][0], "clipped": point["clipped"]}

    def as_dict(self) -> dict[str, Any]:
        return {"oracle": "TFLM runtime (tflite-micro)" if self.tflm_checked else "integer reference only (no tflite-micro wheel)",
                "mismatches": self.mismatches, "sweep_count": int(len(self.sweep_codes)),
                "tolerance_lsb": self.tolerance_lsb, "errors": self.errors, "sweep_errors": self.sweep_errors,
                "points": self.points, "warnings": self.warnings}

    def sweep_meta(self) -> dict[str, Any]:
        """model.json's sweep: a one-input model's codes are all 256 in order, so they are not listed."""
        every = self.sweep_codes.shape[1] == 1 and np.array_equal(self.sweep_codes[:, 0], np.arange(-128, 128))
        return {"codes": "all" if every else self.sweep_codes.tolist(),
                "float": [[round(float(v), 6) for v in row] for row in self.sweep_float]}

    def lines(self) -> list[str]:
        e = self.errors
        out = [f"check: TFLM vs reference {self.mismatches} mismatches over {len(self.sweep_codes)} inputs"
               f"{'' if self.tflm_checked else ' (no tflite-micro: reference only)'}; float vs int8 MAE {e['mae']:.4g}, "
               f"RMSE {e['rmse']:.4g}, max {e['max_abs']:.4g} ({e['max_lsb']:.2f} LSB), L2 rel {e['l2_relative']:.3g}"]
        for p in self.points:
            out.append(f"x = {', '.join(f'{v:g}' for v in p['x'])}: float {' '.join(f'{v:.4f}' for v in p['float'])}, "
                       f"int8 {' '.join(f'{v:.4f}' for v in p['int8'])}{' (clipped)' if p['clipped'] else ''}")
        return out


CHUNK_ROWS = 65536
"""Rows per model call: a million training rows through a 16x16 network would otherwise hold
hundreds of MB of activations and int64 accumulators at once."""


def _float(model: keras.Model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([np.asarray(model(x[k:k + CHUNK_ROWS], training=False), dtype=np.float32)
                           for k in range(0, max(len(x), 1), CHUNK_ROWS)])


def _short(v: float) -> float:
    """The shortest decimal that is the same float32: what a person types, and what the model sees."""
    return float(str(np.float32(v)))


def _inside(x: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """Rows inside the calibrated range, compared in float32 as the firmware compares."""
    x32 = np.asarray(x, dtype=np.float32)
    lo, hi = np.float32(input_range[0]), np.float32(input_range[1])
    return np.all((x32 >= lo) & (x32 <= hi), axis=1)


def probe_inputs(data: Dataset, input_range: tuple[float, float]) -> np.ndarray:
    """The inputs the build prints, the report lists and verify types on the device.

    The seed lesson's: its xs -1..4 and its question x = 10. A CSV's: per input the data's
    min, quartiles and max (values of the data), the range's ends, and one input a quarter
    of the range past its top, to show `clipped`. At most eight rows, sorted for one input."""
    if data.inputs == 1 and data.x[:, 0].tolist() == list(SEED_XS):
        return np.array([*SEED_XS, LESSON_X], dtype=np.float64).reshape(-1, 1)
    lo, hi = input_range
    beyond = max(hi + (hi - lo) / 4, float(np.nextafter(np.float32(hi), np.float32(np.inf))))
    rows = [list(r) for r in np.quantile(data.x, PROBE_QUANTILES, axis=0, method="nearest")]
    if data.inputs == 1:
        rows += [[lo], [hi], [beyond]]
    else:
        middle = list(np.quantile(data.x, 0.5, axis=0, method="nearest"))
        rows.append([beyond, *middle[1:]])
    unique: list[list[float]] = []
    for row in rows:
        short = [_short(v) for v in row]
        if short not in unique:
            unique.append(short)
    if data.inputs == 1:
        unique.sort()
    return np.array(unique, dtype=np.float64)


def sweep_codes(tfl: TfliteModel, data: Dataset, input_range: tuple[float, float]) -> np.ndarray:
    """Every input code for a one-input model; otherwise points of the range and the training rows."""
    if data.inputs == 1:
        return np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    rng = np.random.default_rng(1)
    x = np.vstack([rng.uniform(*input_range, size=(256, data.inputs)), data.x])
    return quant.quantize(x, float(tfl.input.scales[0]), int(tfl.input.zero_points[0]))


def _int8_path(tfl: TfliteModel, x: np.ndarray) -> np.ndarray:
    """What the device answers for float inputs: quantize, run, dequantize."""
    i, o = tfl.input, tfl.output
    codes = quant.quantize(x, float(i.scales[0]), int(i.zero_points[0]))
    out = np.concatenate([reference.run(tfl, codes[k:k + CHUNK_ROWS]) for k in range(0, max(len(codes), 1), CHUNK_ROWS)])
    return quant.dequantize(out, float(o.scales[0]), int(o.zero_points[0]))


def judged_inputs(tfl: TfliteModel, data: Dataset, input_range: tuple[float, float], codes: np.ndarray) -> np.ndarray:
    """Where the tolerance is judged: dense points of the calibrated range, the training rows,
    and the input codes whose value lies inside the range. TFLite stretches the input grid
    to hold 0, so codes outside the data's range exist, and their answers are not the model's."""
    lo, hi = input_range
    if data.inputs == 1:
        x = np.linspace(lo, hi, 201).reshape(-1, 1)
    else:
        x = np.random.default_rng(2).uniform(lo, hi, size=(256, data.inputs))
    grid = quant.dequantize(codes, float(tfl.input.scales[0]), int(tfl.input.zero_points[0]))
    x = np.vstack([x, data.x, grid]).astype(np.float32)
    return x[_inside(x, input_range)]


def underfit_warning(model: keras.Model, data: Dataset) -> str | None:
    """One line when the float model explains too little of y: int8 cannot fix what float got wrong."""
    residual = np.mean((_float(model, data.x) - data.y) ** 2, axis=0)
    variance = np.var(data.y.astype(np.float64), axis=0)
    share = np.where(variance > 0, residual / np.where(variance > 0, variance, 1), 0.0)
    worst = int(np.argmax(share))
    if share[worst] <= UNDERFIT_UNEXPLAINED:
        return None
    which = f"output {worst + 1}" if data.outputs > 1 else "y"
    return (f"the float model fits the data badly: it leaves {share[worst]:.0%} of {which}'s variance unexplained "
            f"(1 - R^2 = {share[worst]:.3g} > {UNDERFIT_UNEXPLAINED:g}, MSE {residual[worst]:.4g}); the data may be "
            "noisy, or the model underfits: train longer (--epochs, --lr, --optimizer adam) or add --hidden layers")


def run(model: keras.Model, tflite: bytes, tfl: TfliteModel, data: Dataset, input_range: tuple[float, float],
        tolerance_lsb: float = DEFAULT_TOLERANCE_LSB) -> CheckResult:
    i, o = tfl.input, tfl.output
    in_scale, in_zp = float(i.scales[0]), int(i.zero_points[0])
    out_scale, out_zp = float(o.scales[0]), int(o.zero_points[0])

    codes = sweep_codes(tfl, data, input_range)
    ref = reference.run(tfl, codes)
    tflm_checked = oracle.tflm_available()
    mismatches = 0
    if tflm_checked:
        tflm = oracle.tflm_outputs(tflite, codes)
        mismatches = int(np.count_nonzero(np.any(tflm != ref, axis=1)))
        if mismatches:
            first = int(np.flatnonzero(np.any(tflm != ref, axis=1))[0])
            raise CheckError(f"the integer reference disagrees with TFLM on {mismatches} of {len(codes)} inputs "
                             f"(first: codes {codes[first].tolist()} -> TFLM {tflm[first].tolist()}, reference {ref[first].tolist()})")
    sweep_float = _float(model, quant.dequantize(codes, in_scale, in_zp))
    sweep_errors = metrics.compare(sweep_float, quant.dequantize(ref, out_scale, out_zp), out_scale)

    lo, hi = input_range
    x = judged_inputs(tfl, data, input_range, codes)
    float_y, int8_y = _float(model, x), _int8_path(tfl, x)
    errors = metrics.compare(float_y, int8_y, out_scale)

    probes = probe_inputs(data, input_range)
    probe_float, probe_int8 = _float(model, probes), _int8_path(tfl, probes)
    clipped = ~_inside(probes, input_range)
    points = [{"x": p.tolist(), "float": f.tolist(), "int8": q.tolist(), "clipped": bool(c)}
              for p, f, q, c in zip(probes, probe_float, probe_int8, clipped)]
    lesson_x = LESSON_X if [LESSON_X] in probes.tolist() and data.x[:, 0].tolist() == list(SEED_XS) else None

    curve = {}
    if data.inputs == 1:
        span = hi - lo
        cx = np.linspace(min(lo, float(probes.min())) - 0.1 * span, max(hi, float(probes.max())) + 0.1 * span,
                         400, dtype=np.float32).reshape(-1, 1)
        curve = {"x": cx[:, 0], "float": _float(model, cx)[:, 0], "int8": _int8_path(tfl, cx)[:, 0]}

    if errors["max_lsb"] > tolerance_lsb:
        row, col = np.unravel_index(int(np.argmax(np.abs(int8_y - float_y))), float_y.shape)
        where = ", ".join(f"{v:g}" for v in x[row])
        which = f"output {col + 1}: " if data.outputs > 1 else ""
        raise CheckError(f"the int8 model is {errors['max_lsb']:.2f} output steps ({errors['max_abs']:.4g}) from the float "
                         f"model at x = {where} ({which}float {float_y[row, col]:.4f}, int8 {int8_y[row, col]:.4f}), inside "
                         f"the calibrated range [{lo:g}, {hi:g}]; tolerance {tolerance_lsb:g} steps (--tolerance-lsb). "
                         "Narrow --input-range, train longer, or raise the tolerance")
    warning = underfit_warning(model, data)
    return CheckResult(codes, sweep_float, ref, tflm_checked, mismatches, errors, sweep_errors, points, curve,
                       tolerance_lsb, probes, lesson_x, [warning] if warning else [])
