"""Keras float vs TFLM int8 vs the integer reference: agreement, error figures, and a verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import keras

from pipeline import metrics, oracle, quant, reference
from pipeline.data import LESSON_X, Dataset
from pipeline.tflite_model import TfliteModel

DEFAULT_TOLERANCE_LSB = 4.0
"""Float-vs-int8 error allowed inside the calibrated range, in output steps. Input rounding and
output rounding cost about one step each; each further layer adds its own rounding."""


class CheckError(ValueError):
    """The int8 model does not compute what Python computes."""


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

    @property
    def lesson(self) -> dict[str, Any] | None:
        """The lesson's question, x = 10, answered in float and in int8 (one-input models)."""
        point = next((p for p in self.points if p["x"] == [LESSON_X]), None)
        if point is None:
            return None
        return {"x": LESSON_X, "float": point["float"][0], "int8": point["int8"][0], "clipped": point["clipped"]}

    def as_dict(self) -> dict[str, Any]:
        return {"oracle": "TFLM runtime (tflite-micro)" if self.tflm_checked else "integer reference only (no tflite-micro wheel)",
                "mismatches": self.mismatches, "sweep_count": int(len(self.sweep_codes)),
                "tolerance_lsb": self.tolerance_lsb, "errors": self.errors, "sweep_errors": self.sweep_errors,
                "points": self.points}

    def lines(self) -> list[str]:
        e = self.errors
        out = [f"check: TFLM vs reference {self.mismatches} mismatches over {len(self.sweep_codes)} inputs"
               f"{'' if self.tflm_checked else ' (no tflite-micro: reference only)'}; float vs int8 MAE {e['mae']:.4g}, "
               f"RMSE {e['rmse']:.4g}, max {e['max_abs']:.4g} ({e['max_lsb']:.2f} LSB), L2 rel {e['l2_relative']:.3g}"]
        if self.lesson:
            lesson = self.lesson
            out.append(f"x = {LESSON_X:g}: float {lesson['float']:.4f}, int8 {lesson['int8']:.4f}"
                       f"{' (clipped)' if lesson['clipped'] else ''}")
        return out


def _float(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(np.asarray(x, dtype=np.float32), training=False), dtype=np.float32)


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
    return quant.dequantize(reference.run(tfl, codes), float(o.scales[0]), int(o.zero_points[0]))


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
    if data.inputs == 1:
        x = np.linspace(lo, hi, 201, dtype=np.float32).reshape(-1, 1)
    else:
        x = np.random.default_rng(2).uniform(lo, hi, size=(256, data.inputs)).astype(np.float32)
    inside = data.x[np.all((data.x >= lo) & (data.x <= hi), axis=1)]
    x = np.vstack([x, inside])
    float_y, int8_y = _float(model, x), _int8_path(tfl, x)
    errors = metrics.compare(float_y, int8_y, out_scale)

    probes = data.x if data.inputs > 1 else np.vstack([data.x, [[LESSON_X]]]).astype(np.float32)
    probe_float, probe_int8 = _float(model, probes), _int8_path(tfl, probes)
    points = [{"x": p.tolist(), "float": f.tolist(), "int8": q.tolist(),
               "clipped": bool(np.any((p < lo) | (p > hi)))}
              for p, f, q in zip(probes, probe_float, probe_int8)]

    curve = {}
    if data.inputs == 1:
        span = hi - lo
        cx = np.linspace(min(lo, float(data.x.min())) - 0.1 * span, max(hi, float(data.x.max()), LESSON_X) + 0.1 * span,
                         400, dtype=np.float32).reshape(-1, 1)
        curve = {"x": cx[:, 0], "float": _float(model, cx)[:, 0], "int8": _int8_path(tfl, cx)[:, 0]}

    worst = max(errors["max_lsb"], sweep_errors["max_lsb"])
    if worst > tolerance_lsb:
        raise CheckError(f"the int8 model is {worst:.2f} output steps ({max(errors['max_abs'], sweep_errors['max_abs']):.4g}) "
                         f"from the float model inside the calibrated range [{lo:g}, {hi:g}]; tolerance {tolerance_lsb:g} "
                         "steps (--tolerance-lsb). Narrow --input-range, train longer, or raise the tolerance")
    return CheckResult(codes, sweep_float, ref, tflm_checked, mismatches, errors, sweep_errors, points, curve, tolerance_lsb)
