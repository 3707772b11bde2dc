"""The one check of every model, trained or given: TFLM int8 vs the integer reference bit for bit on a
sweep of the input space, float vs int8 within a tolerance (where there is a float model), a
classifier's decisions; agreement, error figures, and a verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import keras

from pipeline.rows import text as row_text
from pipeline.int8 import metrics
from pipeline.int8 import oracle
from pipeline.int8 import quant
from pipeline.int8 import reference
from pipeline.int8 import sweep
from pipeline.model.data import LESSON_X, SEED_XS, Dataset, sample_rows
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


FloatModel = Callable[[np.ndarray], np.ndarray]
"""Float inputs [n, width] -> float outputs [n, outputs]: a trained or given Keras model, or a float .tflite."""

RANDOM_ROWS = 512
"""Random input code rows swept for a given model of more than one input (pipeline.int8.sweep.random_rows)."""
RANDOM_SEED = 1
"""Their seed: the same rows every build, and verify makes them again from it."""
DATA_ROWS = 512
"""At most this many rows of a given model's --data join its sweep, quantized as the device quantizes them."""


@dataclass
class CheckResult:
    """What the check found, for a model the build trained and for one it was given alike."""

    sweep_codes: np.ndarray
    oracle: str
    reference: str
    """'agrees' when the integer reference (and so the AOT engine) computes the model, else why not."""
    mismatches: int | None
    """Rows where TFLM and the integer reference differ (0: the check passed only so); None when the
    two were not both computed, so nothing was compared."""
    sweep_float: np.ndarray | None
    float_name: str | None
    """The float model judged against; None: none was given, so no float figures."""
    errors: dict[str, float] | None
    tolerance_lsb: float | None
    probes: np.ndarray
    points: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    random_rows: int = 0
    """The sweep's first rows made from RANDOM_SEED (sweep.random_rows), not listed in model.json."""
    sweep_errors: dict[str, float] | None = None
    curve: dict[str, np.ndarray] = field(default_factory=dict)
    lesson_x: float | None = None
    decisions: dict[str, Any] | None = None
    """A given classifier judged by its top class (decision_gate's figures); None when judged by steps
    (a trained classifier's are in its classification figures)."""
    trained: bool = False
    """The build trained the model: its lines are the lesson's compact ones (README's example)."""

    @property
    def reference_applies(self) -> bool:
        return self.reference == "agrees"

    @property
    def lesson(self) -> dict[str, Any] | None:
        """The lesson's question, x = 10, answered in float and in int8 (the seed's model only)."""
        if self.lesson_x is None:
            return None
        point = next(p for p in self.points if p["x"] == [self.lesson_x])
        return {"x": self.lesson_x, "float": point["float"][0], "int8": point["int8"][0], "clipped": point["clipped"]}

    def as_dict(self) -> dict[str, Any]:
        return {"oracle": self.oracle, "reference": self.reference, "mismatches": self.mismatches,
                "sweep_count": int(len(self.sweep_codes)), "float_model": self.float_name,
                "tolerance_lsb": self.tolerance_lsb, "errors": self.errors, "sweep_errors": self.sweep_errors,
                "points": self.points, "warnings": self.warnings,
                **({"decisions": self.decisions} if self.decisions is not None else {})}

    def sweep_meta(self, board: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
        """model.json's sweep (pipeline.int8.sweep.shipped): every code of a one-input model, not listed;
        of a wider one, its random rows as their seed and about 64 K codes of rows in all; board: rows the
        board's TFLM library answers otherwise, with its answers."""
        return sweep.shipped(self.sweep_codes, self.sweep_float, RANDOM_SEED, self.random_rows, board)

    def lines(self) -> list[str]:
        return self._trained_lines() if self.trained else self._given_lines()

    def _trained_lines(self) -> list[str]:
        e = self.errors
        compared = (f"TFLM vs reference {self.mismatches} mismatches" if self.mismatches is not None
                    else "TFLM not compared (no tflite-micro wheel: the integer reference only)")
        out = [f"check: {compared} over {len(self.sweep_codes)} inputs; float vs int8 MAE {e['mae']:.4g}, "
               f"RMSE {e['rmse']:.4g}, max {e['max_abs']:.4g} ({e['max_lsb']:.2f} LSB), L2 rel {e['l2_relative']:.3g}"]
        for p in self.points:
            out.append(f"x = {row_text(p['x'])}: float {row_text(p['float'], '{:.4f}', ' ')}, "
                       f"int8 {row_text(p['int8'], '{:.4f}', ' ')}{' (clipped)' if p['clipped'] else ''}")
        return out

    def _given_lines(self) -> list[str]:
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
            out.append(decision_line(self.decisions))
        return out


CHUNK_ROWS = 65536
"""Rows per model call: a million training rows through a 16x16 network would otherwise hold
hundreds of MB of activations and int64 accumulators at once."""


def float_outputs(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The float model's answers, a chunk of rows at a time."""
    return _float(model, x)


def _float(model: keras.Model, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([np.asarray(model(x[k:k + CHUNK_ROWS], training=False), dtype=np.float32)
                           for k in range(0, max(len(x), 1), CHUNK_ROWS)])


def _short(v: float) -> float:
    """The shortest decimal that is the same float32: what a person types, and what the model sees."""
    return float(str(np.float32(v)))


def inside(x: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
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
    """A trained model's sweep: every input code for one input; otherwise points of the range and the training rows."""
    if data.inputs == 1:
        return sweep.every_code().rows()
    rng = np.random.default_rng(1)
    x = np.vstack([rng.uniform(*input_range, size=(256, data.inputs)), data.x])
    return quant.input_codes(tfl, x)


def seeded_sweep(width: int, data_codes: np.ndarray | None = None) -> np.ndarray:
    """A given model's sweep: every code of a one-input model; else RANDOM_ROWS seeded random rows
    (which model.json names by their seed), then up to DATA_ROWS of the data's rows."""
    if width == 1:
        return sweep.every_code().rows()
    rows = [sweep.random_rows(RANDOM_SEED, width, 0, RANDOM_ROWS)]
    if data_codes is not None:
        rows.append(np.asarray(data_codes, dtype=np.int8)[:DATA_ROWS])
    return np.concatenate(rows)


def _int8_path(tfl: TfliteModel, x: np.ndarray) -> np.ndarray:
    """What the device answers for float inputs: quantize, run, dequantize."""
    o = tfl.output
    codes = quant.input_codes(tfl, x)
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
    grid = quant.input_values(tfl, codes)
    x = np.vstack([x, data.x, grid]).astype(np.float32)
    return x[inside(x, input_range)]


def underfit_warning(predict: FloatModel, data: Dataset) -> str | None:
    """One line when the float model explains too little of y: int8 cannot fix what float got wrong.
    Not for a classifier, whose one-hot targets have no variance to explain: see classify()."""
    if data.classify:
        return None
    residual = np.mean((predict(data.x) - data.y) ** 2, axis=0)
    variance = np.var(data.y.astype(np.float64), axis=0)
    share = np.where(variance > 0, residual / np.where(variance > 0, variance, 1), 0.0)
    worst = int(np.argmax(share))
    if share[worst] <= UNDERFIT_UNEXPLAINED:
        return None
    which = f"output {worst + 1}" if data.outputs > 1 else "y"
    return (f"the float model fits the data badly: it leaves {share[worst]:.0%} of {which}'s variance unexplained "
            f"(1 - R^2 = {share[worst]:.3g} > {UNDERFIT_UNEXPLAINED:g}, MSE {residual[worst]:.4g}); the data may be "
            "noisy, or the model underfits: train longer (--epochs, --lr, --optimizer adam) or add --hidden layers")


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


def _oracles(tflite: bytes, tfl: TfliteModel, codes: np.ndarray) -> tuple[str, str, np.ndarray | None, int | None]:
    """TFLM (where its wheel is) against the integer reference (where it computes the model), bit for
    bit on the sweep: the oracle's name, the reference's verdict, its answers and the mismatches
    (None: not both computed). Raises CheckError on the first row they differ."""
    want, name = oracle.int8_outputs(tflite, codes)
    oracle_name = "TFLM runtime (tflite-micro)" if name == "tflm" else "integer reference only (no tflite-micro wheel)"
    try:
        ref = reference.run(tfl, codes)
        verdict = "agrees"
    except reference.UnsupportedModelError as refusal:
        return oracle_name, f"does not compute this model ({refusal})", None, None
    if name != "tflm":
        return oracle_name, verdict, ref, None
    differ = np.any(ref != want, axis=1)
    if differ.any():
        first = int(np.flatnonzero(differ)[0])
        raise CheckError(f"the integer reference disagrees with TFLM on {int(differ.sum())} of {len(codes)} rows "
                         f"(first: codes [{row_text(codes[first])}] -> TFLM [{row_text(want[first])}], "
                         f"reference [{row_text(ref[first])}])")
    return oracle_name, verdict, ref, 0


def run(tflite: bytes, tfl: TfliteModel, data: Dataset, input_range: tuple[float, float],
        float_model: FloatModel | None, tolerance_lsb: float = DEFAULT_TOLERANCE_LSB, *, trained: bool,
        float_name: str | None = None, data_given: bool = True, gate_steps: bool = True) -> CheckResult:
    """The check of every model: TFLM and the integer reference agree on a sweep of the input space,
    and the int8 model stays within tolerance_lsb output steps of the float model inside the range.

    data: the training rows of a trained model; of a given one, the rows it is judged on (--data's
    inputs, or points of the range where data_given is False). float_model None (a given int8 model
    alone): no float figures, "not computed". gate_steps False (a classifier judged by its decisions:
    decision_gate) reports the float-vs-int8 steps without refusing on them."""
    i, o = tfl.input, tfl.output
    in_scale, in_zp = float(i.scales[0]), int(i.zero_points[0])
    out_scale, out_zp = float(o.scales[0]), int(o.zero_points[0])
    if trained:
        codes, random_rows = sweep_codes(tfl, data, input_range), 0
    else:
        data_codes = quant.input_codes(tfl, data.x) if data_given else None
        codes = seeded_sweep(data.inputs, data_codes)
        random_rows = RANDOM_ROWS if data.inputs > 1 else 0
    oracle_name, verdict, ref, mismatches = _oracles(tflite, tfl, codes)

    def device(x: np.ndarray) -> np.ndarray:
        """What the device answers for float inputs: quantize, run, dequantize."""
        if trained:
            return _int8_path(tfl, x)
        return quant.dequantize(oracle.int8_outputs(tflite, quant.input_codes(tfl, x))[0], out_scale, out_zp)

    probes = probe_inputs(data, input_range)
    probe_int8 = device(probes)
    clipped = ~inside(probes, input_range)
    warnings = resolution_warnings(data, in_scale) if data_given and not trained else []
    result = CheckResult(codes, oracle_name, verdict, mismatches, None, None, None, None, probes, warnings=warnings,
                         random_rows=random_rows, trained=trained)
    if float_model is None:
        result.points = [{"x": p.tolist(), "int8": q.tolist(), "clipped": bool(c)}
                         for p, q, c in zip(probes, probe_int8, clipped)]
        return result

    swept = quant.input_values(tfl, codes)
    result.sweep_float = float_model(swept)
    if ref is not None:
        result.sweep_errors = metrics.compare(result.sweep_float, quant.dequantize(ref, out_scale, out_zp), out_scale)
    if trained:
        x = judged_inputs(tfl, data, input_range, codes)
    else:
        x = np.vstack([data.x, swept]).astype(np.float32)
        x = x[inside(x, input_range)]
    float_y, int8_y = float_model(x), device(x)
    result.float_name = float_name or "the float model"
    result.errors = metrics.compare(float_y, int8_y, out_scale)
    result.tolerance_lsb = tolerance_lsb
    result.points = [{"x": p.tolist(), "float": f.tolist(), "int8": q.tolist(), "clipped": bool(c)}
                     for p, f, q, c in zip(probes, float_model(probes), probe_int8, clipped)]
    if trained:
        result.lesson_x = LESSON_X if [LESSON_X] in probes.tolist() and data.x[:, 0].tolist() == list(SEED_XS) else None
        result.curve = _curve(tfl, float_model, probes, input_range) if data.inputs == 1 else {}
    if gate_steps and result.errors["max_lsb"] > tolerance_lsb:
        raise CheckError(_too_far(result, data, x, float_y, int8_y, input_range))
    warning = underfit_warning(float_model, data) if trained else None
    result.warnings += [warning] if warning else []
    return result


def _curve(tfl: TfliteModel, float_model: FloatModel, probes: np.ndarray,
           input_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """A one-input model's float and int8 answers over the range and its probes, for fit.png."""
    lo, hi = input_range
    span = hi - lo
    cx = np.linspace(min(lo, float(probes.min())) - 0.1 * span, max(hi, float(probes.max())) + 0.1 * span,
                     400, dtype=np.float32).reshape(-1, 1)
    return {"x": cx[:, 0], "float": float_model(cx)[:, 0], "int8": _int8_path(tfl, cx)[:, 0]}


def _too_far(result: CheckResult, data: Dataset, x: np.ndarray, float_y: np.ndarray, int8_y: np.ndarray,
             input_range: tuple[float, float]) -> str:
    """Where the int8 model strays furthest from the float one, by the data's line when it is a data row."""
    errors = result.errors or {}
    row, col = np.unravel_index(int(np.argmax(np.abs(int8_y - float_y))), float_y.shape)
    where = f"x = {row_text(x[row])}"
    hits = np.flatnonzero(np.all(np.asarray(data.x, dtype=np.float32) == x[row], axis=1))
    where = f"{data.where(int(hits[0]))} ({where})" if hits.size else where
    which = f"output {col + 1}: " if float_y.shape[1] > 1 else ""
    remedy = ". Narrow --input-range, train longer, or raise the tolerance" if result.trained else ""
    return (f"the int8 model is {errors['max_lsb']:.2f} output steps ({errors['max_abs']:.4g}) from {result.float_name} "
            f"at {where} ({which}float {float_y[row, col]:.4f}, int8 {int8_y[row, col]:.4f}), inside the calibrated "
            f"range [{input_range[0]:g}, {input_range[1]:g}]; tolerance {result.tolerance_lsb:g} steps "
            f"(--tolerance-lsb){remedy}")


CLASSIFY_TOLERANCE_LSB = 16.0
"""A classifier's outputs are probabilities in steps of 1/256 (TFLite fixes softmax's int8 output
scale): its float-vs-int8 tolerance in those steps with no hidden layer."""
CLASSIFY_TOLERANCE_PER_HIDDEN_LAYER = 32.0
"""Where two classes meet, softmax is steep: an input or activation rounding step moves a
probability far. Measured worst inside the calibrated range (Gaussian blobs in 2-D, 2, 3 and 5
classes, 4 seeds each, adam, 300 epochs): 10.9 steps with no hidden layer; 13.2 (sigmoid), 30.9
(relu) and 36.3 (tanh) with one of 8 units; 62.1 (relu) and 49.6 (tanh) with 16,16."""
DISAGREEMENT_ROWS_LISTED = 20


DECISION_AGREEMENT = 0.99
"""A classifier's default gate: the device's top class (the int8 model as TFLM computes it) is the
float model's on at least this share of the data rows and of the hold-out rows ..."""
ACCURACY_DROP = 0.01
"""... and its hold-out accuracy is at most this much below the float model's."""
DECISION_SLACK_ROWS = 2
"""Rows that may differ however few rows there are: a row within a rounding step of the boundary
between two classes may fall either way, and in a hold-out of 60 rows one such row is 1.7%."""
DECISION_DATA_ROWS = 20_000
"""Data rows the decisions are compared on: all, or an evenly spread sample of a larger set."""


def decision_gate(predict: Callable[[np.ndarray], np.ndarray], tflite: bytes, tfl: TfliteModel, data: Dataset,
                  classified: "Classification | None" = None) -> dict[str, Any]:
    """A classifier judged by what it decides: refuses (CheckError) where the device's top class leaves
    the float model's on more than 1% of the data rows or of the hold-out rows, or its hold-out
    accuracy drops by more than a point; returns the figures (report.json's classification.decisions)."""
    rows = sample_rows(len(data.x), DECISION_DATA_ROWS)
    x = data.x[rows]
    codes = quant.input_codes(tfl, x)
    device = np.concatenate([oracle.int8_outputs(tflite, codes[k:k + CHUNK_ROWS])[0]
                             for k in range(0, len(codes), CHUNK_ROWS)]) if len(codes) else np.zeros((0, 1))
    differ = np.flatnonzero(top(predict(x)) != top(device))
    figures: dict[str, Any] = {"data_rows": int(len(rows)), "data_agreement": 1 - len(differ) / max(len(rows), 1),
                               "gate_agreement": DECISION_AGREEMENT, "gate_accuracy_drop": ACCURACY_DROP}
    if len(differ) > max((1 - DECISION_AGREEMENT) * len(rows), DECISION_SLACK_ROWS):
        first = data.where(int(rows[differ[0]]))
        raise CheckError(f"the device decides as the float model on {100 * figures['data_agreement']:.2f}% of the data "
                         f"rows ({len(differ)} of {len(rows)} differ, the first {first}); a classifier needs "
                         f"{100 * DECISION_AGREEMENT:g}%, or {DECISION_SLACK_ROWS} rows differing at most (or "
                         "--tolerance-lsb STEPS to judge its probabilities instead)")
    if classified is not None and classified.rows:
        agree = 1 - len(classified.disagreements()) / classified.rows
        drop = classified.accuracy(classified.float_top) - classified.accuracy(classified.device_top)
        figures.update(holdout_rows=classified.rows, holdout_agreement=agree, accuracy_drop=drop)
        if len(classified.disagreements()) > max((1 - DECISION_AGREEMENT) * classified.rows, DECISION_SLACK_ROWS):
            first = classified.where(classified.disagreements()[:1])[0]
            raise CheckError(f"the device decides as the float model on {100 * agree:.2f}% of the hold-out rows "
                             f"({len(classified.disagreements())} of {classified.rows} differ, the first at line "
                             f"{first}); a classifier needs {100 * DECISION_AGREEMENT:g}%, or {DECISION_SLACK_ROWS} rows differing at "
                             "most (or --tolerance-lsb STEPS)")
        if drop > max(ACCURACY_DROP, DECISION_SLACK_ROWS / classified.rows) + 1e-12:
            raise CheckError(f"the device's hold-out accuracy is {100 * drop:.1f} points below the float model's "
                             f"({100 * classified.accuracy(classified.device_top):.1f}% against "
                             f"{100 * classified.accuracy(classified.float_top):.1f}%); a classifier may lose at most "
                             f"{100 * ACCURACY_DROP:g}, or {DECISION_SLACK_ROWS} rows' worth (or --tolerance-lsb STEPS)")
    return figures


def decision_line(figures: dict[str, Any]) -> str:
    """What the build prints of decision_gate's figures."""
    held = (f" and {100 * figures['holdout_agreement']:.2f}% of {figures['holdout_rows']} hold-out rows (accuracy "
            f"{100 * figures['accuracy_drop']:.1f} points below float)" if "holdout_rows" in figures else "")
    return (f"decisions: the device's top class is the float model's on {100 * figures['data_agreement']:.2f}% of "
            f"{figures['data_rows']} data rows{held}; the gate: {100 * DECISION_AGREEMENT:g}% (or {DECISION_SLACK_ROWS} rows "
            f"differing) and at most {100 * ACCURACY_DROP:g} point (probability steps are reported, not gated, without "
            "--tolerance-lsb)")


def classify_tolerance_lsb(hidden: Sequence[int]) -> float:
    """A classifier's default tolerance in probability steps of 1/256: 16 + 32 per hidden layer
    (16, 48, 80), at most 256, every step; the hold-out accuracy and agreement figures judge the rest."""
    return min(CLASSIFY_TOLERANCE_LSB + CLASSIFY_TOLERANCE_PER_HIDDEN_LAYER * len(hidden), 256.0)


def top(outputs: np.ndarray) -> np.ndarray:
    """The predicted class per row: the largest output, the lowest index among equal ones (np.argmax's rule)."""
    return np.argmax(np.asarray(outputs), axis=1)


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows: the true class; columns: the predicted class."""
    return np.bincount(np.asarray(truth) * classes + np.asarray(predicted), minlength=classes * classes).reshape(classes, classes)


def per_class(matrix: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Precision and recall per class from a confusion matrix; None where a class was never
    predicted (precision) or never present (recall), rather than a made-up 0."""
    hits = np.diag(matrix).astype(np.float64)
    predicted, present = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = [float(h / p) if p else None for h, p in zip(hits, predicted)]
    recall = [float(h / n) if n else None for h, n in zip(hits, present)]
    return precision, recall


def lite_outputs(tflite: bytes, codes: np.ndarray) -> np.ndarray:
    """The int8 model as TensorFlow Lite's own kernels compute it: for SOFTMAX, LOGISTIC and TANH
    they are other integer algorithms than TFLM's, and may round an output a few steps apart."""
    import warnings
    import tensorflow as tf
    from pipeline.capture import fd_output
    with warnings.catch_warnings(), fd_output(2):
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=bytes(tflite),
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    codes = np.asarray(codes, dtype=np.int8)
    index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    rows = []
    for k in range(0, len(codes), CHUNK_ROWS):
        block = codes[k:k + CHUNK_ROWS]
        interpreter.resize_tensor_input(index, list(block.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, block)
        interpreter.invoke()
        rows.append(np.array(interpreter.get_tensor(out_index), dtype=np.int8).reshape(len(block), -1))
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.int8)


@dataclass
class Classification:
    """A classifier on its hold-out rows: float, int8 (TensorFlow Lite) and int8 as the device
    computes it (the oracle, which the device equals bit for bit)."""

    labels: tuple[str, ...]
    truth: np.ndarray
    float_top: np.ndarray
    int8_top: np.ndarray
    device_top: np.ndarray
    device_oracle: str
    lines: np.ndarray | None
    max_lsb: float
    """Largest |float - device| probability over the hold-out rows, in steps of the output scale."""
    train_counts: np.ndarray
    holdout_counts: np.ndarray
    class_weights: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(len(self.truth))

    def accuracy(self, predicted: np.ndarray) -> float:
        return float(np.mean(predicted == self.truth)) if self.rows else 0.0

    def confusion(self, predicted: np.ndarray | None = None) -> np.ndarray:
        return confusion(self.truth, self.device_top if predicted is None else predicted, len(self.labels))

    def disagreements(self) -> np.ndarray:
        """Hold-out rows (indices) where the float model's class is not the device's."""
        return np.flatnonzero(self.float_top != self.device_top)

    def where(self, rows: np.ndarray) -> list[int]:
        return [int(self.lines[r]) if self.lines is not None else int(r) + 1 for r in rows]

    def as_dict(self) -> dict[str, Any]:
        matrix = self.confusion()
        precision, recall = per_class(matrix)
        float_precision, float_recall = per_class(self.confusion(self.float_top))
        disagree = self.disagreements()
        return {
            "labels": list(self.labels), "label_order": "sorted", "tie_rule": "lowest index among equal int8 codes",
            "holdout_rows": self.rows,
            "balance": {"train": self.train_counts.tolist(), "holdout": self.holdout_counts.tolist(),
                        "class_weights": [round(float(w), 6) for w in self.class_weights]},
            "accuracy": {"float": self.accuracy(self.float_top), "int8": self.accuracy(self.int8_top),
                         "device": self.accuracy(self.device_top)},
            "device_oracle": self.device_oracle,
            "per_class": {"precision": precision, "recall": recall, "float_precision": float_precision,
                          "float_recall": float_recall},
            "confusion": matrix.tolist(), "float_confusion": self.confusion(self.float_top).tolist(),
            "disagreements": {"float_vs_device": int(len(disagree)),
                              "int8_vs_device": int(np.count_nonzero(self.int8_top != self.device_top)),
                              "lines": self.where(disagree[:DISAGREEMENT_ROWS_LISTED])},
            "max_lsb": self.max_lsb, "warnings": self.warnings,
        }

    def lines_out(self) -> list[str]:
        """What the build prints about the classifier."""
        n = self.rows
        disagree = len(self.disagreements())

        def pct(predicted: np.ndarray) -> str:
            return f"{100 * self.accuracy(predicted):.1f}% ({int(np.sum(predicted == self.truth))}/{n})"

        precision, recall = per_class(self.confusion())
        classes = ", ".join(f"{label} {'-' if p is None else f'{p:.2f}'}/{'-' if r is None else f'{r:.2f}'}"
                            for label, p, r in zip(self.labels, precision, recall))
        return [f"hold-out accuracy over {n} rows: float {pct(self.float_top)}, int8 {pct(self.int8_top)}, "
                f"device {pct(self.device_top)} ({self.device_oracle}); float and device disagree on {disagree} row(s)",
                f"  precision/recall (device): {classes}"]


def classify(model: keras.Model, tflite: bytes, tfl: TfliteModel, holdout: Dataset, train_counts: np.ndarray,
             class_weights: np.ndarray) -> Classification:
    """The classifier's figures on rows training never saw."""
    o = tfl.output
    codes = quant.input_codes(tfl, holdout.x)
    probabilities = _float(model, holdout.x)
    device, name = oracle.int8_outputs(tflite, codes)
    lite = lite_outputs(tflite, codes)
    device_p = quant.dequantize(device, float(o.scales[0]), int(o.zero_points[0]))
    max_lsb = float(np.max(np.abs(device_p - probabilities))) / float(o.scales[0]) if len(codes) else 0.0
    result = Classification(holdout.labels, holdout.classes, top(probabilities), top(lite), top(device),
                            "TFLM runtime (tflite-micro)" if name == "tflm" else "integer reference",
                            holdout.lines, max_lsb, np.asarray(train_counts), holdout.counts(), np.asarray(class_weights))
    majority = float(train_counts.max() / train_counts.sum())
    if result.accuracy(result.float_top) <= majority:
        result.warnings.append(f"the float model's hold-out accuracy, {100 * result.accuracy(result.float_top):.1f}%, "
                               f"is no better than always answering the largest class ({100 * majority:.1f}%): train "
                               "longer (--epochs, --lr, --optimizer adam) or add --hidden layers")
    return result
