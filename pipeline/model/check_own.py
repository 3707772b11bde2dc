"""The check for a model this build did not train: TFLM, the integer reference (where it
computes the model) and so the AOT engine agree bit for bit on a sweep of the input space, and,
given the float model, the float-vs-int8 figures and the tolerance."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.rows import text as row_text
from pipeline.int8 import metrics, oracle, quant, reference, sweep
from pipeline.int8.tflite_model import TfliteModel
from pipeline.model import check
from pipeline.model.check import CheckError, inside, probe_inputs
from pipeline.model.data import Dataset
from pipeline.model.own import FloatModel

RANDOM_ROWS = 512
"""Random input code rows swept for a model of more than one input (pipeline.int8.sweep.random_rows)."""
RANDOM_SEED = 1
"""Their seed: the same rows every build, and verify makes them again from it."""
DATA_ROWS = 512
"""At most this many rows of --data join the sweep, quantized as the device quantizes them."""


@dataclass
class OwnCheck:
    sweep_codes: np.ndarray
    oracle: str
    reference: str
    """'agrees' when the integer reference (and so the AOT engine) computes the model, else why not."""
    sweep_float: np.ndarray | None
    float_name: str | None
    errors: dict[str, float] | None
    tolerance_lsb: float | None
    probes: np.ndarray
    points: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mismatches: int | None = None
    """Rows where TFLM and the integer reference differ (0: the check passed only so); None when the
    two were not both computed, so nothing was compared."""
    decisions: dict[str, Any] | None = None
    """A classifier judged by its top class (check.decision_gate's figures); None when judged by steps."""

    @property
    def reference_applies(self) -> bool:
        return self.reference == "agrees"

    def sweep_meta(self, board: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
        """model.json's sweep (pipeline.int8.sweep.shipped): every code of a one-input model; of a
        wider one, its random rows as their seed and about 64 K codes of rows in all; board: rows the
        board's TFLM library answers otherwise, with its answers."""
        random = RANDOM_ROWS if self.sweep_codes.shape[1] > 1 else 0
        return sweep.shipped(self.sweep_codes, self.sweep_float, RANDOM_SEED, random, board)

    def as_dict(self) -> dict[str, Any]:
        return {"oracle": self.oracle, "reference": self.reference, "sweep_count": int(len(self.sweep_codes)),
                "mismatches": self.mismatches, "float_model": self.float_name, "errors": self.errors,
                "tolerance_lsb": self.tolerance_lsb, "points": self.points, "warnings": self.warnings,
                **({"decisions": self.decisions} if self.decisions is not None else {})}

    def lines(self) -> list[str]:
        rows = f"over {len(self.sweep_codes)} input rows"
        if self.mismatches is not None:
            out = [f"check: {self.oracle} vs the integer reference (the AOT engine's arithmetic) {rows}: "
                   f"{self.mismatches} mismatches"]
        elif self.reference_applies:
            out = [f"check: {self.oracle} {rows}; TFLM not compared (no tflite-micro wheel)"]
        else:
            out = [f"check: {self.oracle} {rows}; not compared: the integer reference {self.reference}"]
        if self.errors is None:
            out.append("float vs int8: not computed (no float model: give --float-model FILE.tflite|FILE.keras)")
        else:
            e = self.errors
            limit = "reported" if self.decisions is not None else f"tolerance {self.tolerance_lsb:g}"
            out.append(f"float vs int8 ({self.float_name}): MAE {e['mae']:.4g}, RMSE {e['rmse']:.4g}, max "
                       f"{e['max_abs']:.4g} ({e['max_lsb']:.2f} LSB, {limit}), L2 rel {e['l2_relative']:.3g}")
        if self.decisions is not None:
            out.append(check.decision_line(self.decisions))
        return out


def sweep_codes(width: int, data_codes: np.ndarray | None) -> np.ndarray:
    """Every code of a one-input model; else seeded random codes, then the data's rows."""
    if width == 1:
        return sweep.every_code().rows()
    rows = [sweep.random_rows(RANDOM_SEED, width, 0, RANDOM_ROWS)]
    if data_codes is not None:
        rows.append(np.asarray(data_codes, dtype=np.int8)[:DATA_ROWS])
    return np.concatenate(rows)


FEW_CODES = 8
"""An input column of the data spanning fewer int8 codes than this is all but constant to the device."""


def resolution_warnings(data: Dataset, scale: float) -> list[str]:
    """One int8 input tensor has one scale for all its values: a column of far narrower range
    than the others gets few codes, and the device barely sees it."""
    span = (data.x.max(axis=0) - data.x.min(axis=0)) / scale
    narrow = [k for k in range(data.inputs) if span[k] < FEW_CODES and np.unique(data.x[:, k]).size > FEW_CODES]
    if not narrow:
        return []
    shown = ", ".join(f"{data.names[k]} ({span[k]:.1f})" for k in narrow[:6]) + (", ..." if len(narrow) > 6 else "")
    return [f"{len(narrow)} input column(s) of the data span fewer than {FEW_CODES} int8 codes at the input scale "
            f"{scale:.6g}: {shown}; the input tensor has one scale for every value, so the device barely sees them. "
            "Scale the inputs to similar ranges before they reach the model"]


def run(tflite: bytes, tfl: TfliteModel, data: Dataset, input_range: tuple[float, float], float_fn: FloatModel | None,
        float_name: str | None, tolerance_lsb: float, data_given: bool, gate_steps: bool = True) -> OwnCheck:
    """data holds the rows the model is judged on: --data's inputs, or points of the range when none was given.
    gate_steps False: a classifier, judged by its top class on those rows (check.decision_gate)."""
    i, o = tfl.input, tfl.output
    in_scale, in_zp = float(i.scales[0]), int(i.zero_points[0])
    out_scale, out_zp = float(o.scales[0]), int(o.zero_points[0])
    width = data.inputs
    codes = sweep_codes(width, quant.quantize(data.x, in_scale, in_zp) if data_given else None)
    want, name = oracle.int8_outputs(tflite, codes)
    oracle_name = "TFLM runtime (tflite-micro)" if name == "tflm" else "integer reference only (no tflite-micro wheel)"
    try:
        ref = reference.run(tfl, codes)
        verdict = "agrees"
    except reference.UnsupportedModelError as refusal:
        ref, verdict = None, f"does not compute this model ({refusal})"
    mismatches = None
    if ref is not None and name == "tflm":
        differ = np.any(ref != want, axis=1)
        mismatches = int(differ.sum())
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            raise CheckError(f"the integer reference disagrees with TFLM on {int(differ.sum())} of {len(codes)} rows "
                             f"(first: codes [{row_text(codes[first])}] -> TFLM [{row_text(want[first])}], "
                             f"reference [{row_text(ref[first])}])")
    probes = probe_inputs(data, input_range)
    probe_int8 = quant.dequantize(oracle.int8_outputs(tflite, quant.quantize(probes, in_scale, in_zp))[0],
                                  out_scale, out_zp)
    clipped = ~inside(probes, input_range)
    warnings = resolution_warnings(data, in_scale) if data_given else []
    if float_fn is None:
        points = [{"x": p.tolist(), "int8": q.tolist(), "clipped": bool(c)} for p, q, c in zip(probes, probe_int8, clipped)]
        return OwnCheck(codes, oracle_name, verdict, None, None, None, None, probes, points, warnings, mismatches)

    sweep_float = float_fn(quant.dequantize(codes, in_scale, in_zp))
    judged = np.vstack([data.x, quant.dequantize(codes, in_scale, in_zp)]).astype(np.float32)
    judged = judged[inside(judged, input_range)]
    float_y = float_fn(judged)
    int8_y = quant.dequantize(oracle.int8_outputs(tflite, quant.quantize(judged, in_scale, in_zp))[0], out_scale, out_zp)
    errors = metrics.compare(float_y, int8_y, out_scale)
    probe_float = float_fn(probes)
    points = [{"x": p.tolist(), "float": f.tolist(), "int8": q.tolist(), "clipped": bool(c)}
              for p, f, q, c in zip(probes, probe_float, probe_int8, clipped)]
    decisions = None if gate_steps else check.decision_gate(float_fn, tflite, tfl, data)
    if gate_steps and errors["max_lsb"] > tolerance_lsb:
        row, col = np.unravel_index(int(np.argmax(np.abs(int8_y - float_y))), float_y.shape)
        where = f"x = {row_text(judged[row])}"
        hits = np.flatnonzero(np.all(np.asarray(data.x, dtype=np.float32) == judged[row], axis=1))
        where = f"{data.where(int(hits[0]))} ({where})" if hits.size else where
        raise CheckError(f"the int8 model is {errors['max_lsb']:.2f} output steps ({errors['max_abs']:.4g}) from "
                         f"{float_name} at {where} (output {col + 1}: float {float_y[row, col]:.4f}, int8 "
                         f"{int8_y[row, col]:.4f}), inside the calibrated range [{input_range[0]:g}, "
                         f"{input_range[1]:g}]; tolerance {tolerance_lsb:g} steps (--tolerance-lsb)")
    return OwnCheck(codes, oracle_name, verdict, sweep_float, float_name, errors, tolerance_lsb, probes, points, warnings,
                    mismatches, decisions)
