"""Prove the device computes what Python computes: int8 bit for bit, floats within tolerance.

The int8 oracle is TFLM's own runtime (reference kernels) on the same flatbuffer, so
any mismatch is the device's, not a modelling difference. Float queries are sent as a
person types them, to check the device's own quantize/print path against `q`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field


import numpy as np

from pipeline.rows import text as row_text, words as row_words
from pipeline.device import connect
from pipeline.device import deployed
from pipeline.device import model_json
from pipeline.int8 import metrics
from pipeline.int8 import oracle
from pipeline.device.deployed import DeployedModel
from pipeline.device.serial_client import Device, Identity
from pipeline.int8.description import CLASSIFY
from pipeline import cli

PRINT_HALF_STEP = 0.5e-4  # the device prints 4 fractional digits


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class VerifyResult:
    """Everything verify measured; `ok` is the verdict."""

    identity: Identity
    oracle: str
    rows: int
    mismatches: int
    device_vs_float: dict[str, float] | None
    """None when the model was deployed without its float model: the int8 proof stands alone."""
    oracle_vs_float: dict[str, float] | None
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    judged: int = 0
    """Sweep rows inside the calibrated range: the float figures and the tolerance are over these."""
    holdout: dict[str, float] | None = None
    """A classifier's hold-out rows: how many, and the accuracy of the device's and Python's int8 top labels."""

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def float_queries(model: DeployedModel) -> np.ndarray:
    """Inputs a person would type: the build's probes (model.json), plus the calibrated range's
    ends and one input past it, to see `clipped` appear exactly where the range ends."""
    lo, hi = model.input_range
    beyond = model_json.past_range(lo, hi)
    over = np.full(model.inputs, (lo + hi) / 2)
    over[0] = beyond
    rows = [*model.probes, np.full(model.inputs, lo), np.full(model.inputs, hi), over]
    # One query per value the device would read: the client sends a value as its float32, so
    # two spellings of one float32 (a probe in float64, the range's end) are one query.
    unique: dict[bytes, np.ndarray] = {}
    for row in rows:
        unique.setdefault(np.asarray(row, dtype=np.float32).tobytes(), np.asarray(row, dtype=np.float64))
    ordered = list(unique.values())
    if model.inputs == 1:
        ordered.sort(key=lambda row: float(row[0]))
    return np.array(ordered, dtype=np.float64).reshape(-1, model.inputs)


def _printed_equal(printed: float, exact: float) -> bool:
    """Equal to the device's printed precision: 4 fractional digits, or 5 significant in e-form."""
    slack = abs(exact) * 1e-6  # float32 product vs its float64 re-computation here
    if abs(exact) >= 1e9:
        return abs(printed - exact) <= abs(exact) * PRINT_HALF_STEP + slack
    return abs(printed - exact) <= PRINT_HALF_STEP + slack


def _identity_checks(identity: Identity, model: DeployedModel, allow_stale: bool) -> tuple[list[Check], list[str]]:
    checks, warnings = [], []
    same_id = identity.model == model.id
    if same_id or not allow_stale:
        checks.append(Check("model id", same_id, f"device {identity.model}, local build {model.id}"))
    else:
        warnings.append(f"stale firmware allowed: device runs {identity.model}, local build is {model.id}")
    checks.append(Check("shape", (identity.inputs, identity.outputs) == (model.inputs, model.outputs),
                        f"device {identity.inputs} in / {identity.outputs} out, "
                        f"model.json {model.inputs} / {model.outputs}"))
    checks.append(Check("quantization", identity.same_quantization(model.description),
                        f"device in {identity.input_scale:g}/{identity.input_zero_point}"
                        f"{f' center {identity.input_center:g}' if identity.input_center else ''} out "
                        f"{identity.output_scale:g}/{identity.output_zero_point} range "
                        f"{identity.input_range[0]:g}:{identity.input_range[1]:g}"))
    return checks, warnings


def _row_label(x: np.ndarray, shown: int = 4) -> str:
    """A query's values for the report: all of a narrow row; of a wide one (an IMU window of
    714 values) the first few and how many, so that each check stays one readable line."""
    if len(x) <= shown + 1:
        return ",".join(f"{v:g}" for v in x)
    return ",".join(f"{v:g}" for v in x[:shown]) + f",... ({len(x)} values)"


def _float_query_check(device: Device, model: DeployedModel, x: np.ndarray) -> Check:
    """The float path equals `q` on the host-quantized codes, and `clipped` is right."""
    label = _row_label(x)
    answer = device.predict([float(v) for v in x])
    codes = model.quantize(x.astype(np.float32))
    q_out = np.array(device.predict_codes([int(c) for c in codes]), dtype=np.int8)
    exact = model.dequantize(q_out).astype(np.float64)
    should_clip = not bool(model.inside(x)[0])
    same = len(answer.values) == len(exact) and all(map(_printed_equal, answer.values, exact))
    ok = same and answer.clipped == should_clip
    if model.description.task == CLASSIFY:
        ok = ok and answer.label == model.description.labels[model.description.top(q_out)]
    return Check(f"float x={label}", ok,
                 f"device '{row_words(answer.text)}', q {row_text(q_out, '{}', ' ')} -> "
                 f"{row_words(model.description.answer_text(q_out, should_clip))}")


SWEEP_CHUNK_CODES = 65536
"""verify sends the sweep in chunks of about this many input codes (at least one row each): a wide
model's rows are made, sent and compared a chunk at a time, never all held at once."""


def _sweep_answers(device: Device, model: DeployedModel, engine: str) -> tuple[np.ndarray, np.ndarray, str, int]:
    """The device's and the expected int8 answers to every sweep row, [n, outputs] each, the
    oracle's name, and how many rows were held to the board library's own answers (a TFLM device,
    on rows where that library rounds apart from the runtime)."""
    got_rows, want_rows = [], []
    oracle_name = "reference"
    board_rows = 0
    size = max(1, SWEEP_CHUNK_CODES // max(model.inputs, 1))
    for start, rows in model.sweep_rows.chunks(size):
        got = np.array(device.predict_codes_many(rows.tolist()), dtype=np.int8).reshape(len(rows), -1)
        want, oracle_name = oracle.int8_outputs(model.tflite, rows)
        want = np.array(want, dtype=np.int8).reshape(len(rows), -1)
        if got.shape != want.shape:
            raise ValueError(f"device gave {got.shape[1]} outputs per row, the model has {want.shape[1]}")
        if engine == "tflm":
            for row in (k for k in model.board if start <= k < start + len(rows)):
                want[row - start] = model.board[row]
                board_rows += 1
        got_rows.append(got)
        want_rows.append(want)
    return np.concatenate(got_rows), np.concatenate(want_rows), oracle_name, board_rows


def verify(device: Device, model: DeployedModel, allow_stale: bool = False) -> VerifyResult:
    """Runs every check against an open device; raises only on communication errors."""
    identity = device.identify()
    checks, warnings = _identity_checks(identity, model, allow_stale)
    codes = model.sweep_rows
    expected_float = None if model.sweep_float is None else model.sweep_float.astype(np.float32)
    got, want, oracle_name, board_rows = _sweep_answers(device, model, identity.engine)
    mismatches = int(np.count_nonzero(np.any(got != want, axis=1)))
    held = (f"; {board_rows} of them held to the board library's own rounding (see model.json's sweep.board)"
            if board_rows else "")
    checks.append(Check(f"int8 vs {oracle_name}", mismatches == 0,
                        f"{mismatches} of {len(codes)} rows differ{held}"))
    if model.board and identity.engine != "tflm":
        warnings.append(f"{len(model.board)} sweep row(s) where the board's TFLM library rounds apart from the "
                        f"runtime: the {identity.engine} engine is held to the runtime's answers there")
    inside = np.concatenate([model.inside(model.input_values(rows)) for _, rows in codes.chunks(4096)]) \
        if len(codes) else np.zeros(0, dtype=bool)
    device_vs_float = oracle_vs_float = None
    if expected_float is None:
        warnings.append("no float model was deployed with this int8 model: the float answers are not judged")
    else:
        device_vs_float = metrics.compare(expected_float[inside], model.dequantize(got[inside]), model.output_scale)
        oracle_vs_float = metrics.compare(expected_float[inside], model.dequantize(want[inside]), model.output_scale)
        tolerance = model.description.tolerance_lsb
        if model.description.gate == "decisions":  # a classifier: its top class is judged (hold-out checks)
            warnings.append(f"float vs device: max {device_vs_float['max_lsb']:.2f} LSB over the {int(inside.sum())} "
                            "rows inside the calibrated range, reported, not judged: the build held this classifier "
                            "to its decisions")
        else:
            checks.append(Check("float tolerance", device_vs_float["max_lsb"] <= tolerance,
                                f"max {device_vs_float['max_lsb']:.2f} LSB over the {int(inside.sum())} rows inside the "
                                f"calibrated range, tolerance {tolerance:g} LSB"))
    checks.extend(_float_query_check(device, model, x) for x in float_queries(model))
    holdout = _classifier_checks(device, model, identity, checks) if model.description.task == CLASSIFY else None
    return VerifyResult(identity, oracle_name, len(codes), mismatches, device_vs_float,
                        oracle_vs_float, checks, warnings, int(inside.sum()), holdout)


def _classifier_checks(device: Device, model: DeployedModel, identity: Identity,
                       checks: list[Check]) -> dict[str, float] | None:
    """The labels, and the hold-out rows: the device's int8 outputs equal the oracle's, its top
    label on each row (asked as a person would, by value) equals Python's int8 top label, and
    so its accuracy equals Python's int8 accuracy."""
    description = model.description
    checks.append(Check("task", identity.task == CLASSIFY and identity.classes == description.classes,
                        f"device task={identity.task} classes={identity.classes}, model.json "
                        f"{description.classes} classes"))
    labels = device.labels()
    checks.append(Check("labels", labels == list(description.labels),
                        f"device {labels}, model.json {list(description.labels)}"))
    if model.holdout_x is None or not len(model.holdout_x):
        return None
    x, truth = model.holdout_x, model.holdout_labels
    codes = model.quantize(x.astype(np.float32)).reshape(len(x), -1)
    got = np.array(device.predict_codes_many(codes.tolist()), dtype=np.int8).reshape(len(x), -1)
    want = np.asarray(oracle.int8_outputs(model.tflite, codes)[0], dtype=np.int8).reshape(len(x), -1)
    differ = int(np.count_nonzero(np.any(got != want, axis=1)))
    checks.append(Check("hold-out int8", differ == 0, f"{differ} of {len(x)} rows differ from the oracle"))
    python_top = [description.labels[description.top(row)] for row in want]
    device_top = [device.predict([float(v) for v in row]).label for row in x]
    wrong = sum(a != b for a, b in zip(device_top, python_top))
    checks.append(Check("hold-out top labels", wrong == 0,
                        f"{wrong} of {len(x)} rows' top labels differ from Python's int8 ones"))
    names = [description.labels[int(t)] for t in truth]
    return {"rows": len(x),
            "device_accuracy": sum(a == b for a, b in zip(device_top, names)) / len(x),
            "python_accuracy": sum(a == b for a, b in zip(python_top, names)) / len(x)}


def report(result: VerifyResult, port: str) -> str:
    """The table a person reads; the last line is exactly `N passed, N failed`."""
    i = result.identity
    lines = [f"device   {port}: model {i.model}, engine {i.engine}, arena {i.arena} B",
             f"sweep    {result.rows} rows, int8 oracle: {result.oracle}; vs float: the {result.judged} rows "
             "inside the calibrated range", ""]
    if result.device_vs_float is None or result.oracle_vs_float is None:
        lines.append("vs float: not computed (deployed without its float model)")
    else:
        lines.append(f"{'':18}{'MAE':>10}{'RMSE':>10}{'max abs':>10}{'max LSB':>9}{'L2 rel':>10}{'cosine':>11}")
        for name, m in (("device vs float", result.device_vs_float), (f"{result.oracle} vs float", result.oracle_vs_float)):
            lines.append(f"{name:18}{m['mae']:10.4g}{m['rmse']:10.4g}{m['max_abs']:10.4g}"
                         f"{m['max_lsb']:9.2f}{m['l2_relative']:10.3g}{m['cosine']:11.7f}")
    lines.append(f"int8 mismatches vs {result.oracle}: {result.mismatches} of {result.rows} rows")
    if result.holdout:
        h = result.holdout
        lines.append(f"hold-out accuracy over {h['rows']} rows: device {h['device_accuracy']:.4f}, "
                     f"Python int8 {h['python_accuracy']:.4f}")
    lines.append("")
    lines.extend(f"warning  {w}" for w in result.warnings)
    lines.extend(f"{'PASS' if c.passed else 'FAIL'}     {c.name}: {c.detail}" for c in result.checks)
    lines.append(f"{result.passed} passed, {result.failed} failed")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "verify",
        description="Check the device against Python: its int8 answers to model.json's sweep must "
                    "equal the oracle's bit for bit (TFLM's runtime on model.tflite; the integer "
                    "reference where the tflite-micro wheel is missing), their values inside the "
                    "calibrated range must lie within model.json's tolerance of the Keras float model, "
                    "and float queries typed as a person would (model.json's probes, the range's ends "
                    "and one input past it) must equal the q answers to the printed precision. "
                    "Prints a metrics table and ends with 'N passed, N failed'.",
        epilog=cli.EXIT_STATUSES)
    connect.add_device_arguments(parser)
    return parser


@cli.command
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    model = deployed.load(args.model_dir)
    timeout = connect.answer_timeout(args, model.tflite)
    with connect.device_port(args) as port, Device(port, timeout=timeout) as device:
        connect.check_fresh(device.identify().model, model.id, args.allow_stale)
        result = verify(device, model, allow_stale=args.allow_stale)
    print(report(result, port))
    return 0 if result.ok else 1

