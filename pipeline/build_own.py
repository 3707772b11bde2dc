"""The build for a model trained elsewhere (--keras or --tflite): model -> int8 -> check -> emit, no training."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.board import flash_refusal, tflm_ram_warning
from pipeline.emit import aot, own_report, tflm_ops
from pipeline.emit import sources as emit
from pipeline.errors import BadInput
from pipeline.int8 import description, oracle, reference, tflite_model
from pipeline.int8.tflite_model import TfliteModel
from pipeline.model import check, check_own, data as data_stage, keras_ops, own, quantize

JUDGED_DATA_ROWS = 2048
"""Rows of --data the float-vs-int8 figures are computed on (spread evenly over the file)."""
RANGE_ROWS = 256


class OwnUsageError(BadInput, ValueError):
    """Arguments that do not fit the given model."""


def _rows(path: Path, width: int) -> data_stage.Dataset:
    """--data for a given model: each row its `width` inputs, then optionally one target or label (unused)."""
    columns = data_stage.column_count(path)
    if columns == width:
        return data_stage.load_csv(path, 0, "regress")
    if columns == width + 1:
        return data_stage.load_csv(path, 1, None)
    raise OwnUsageError(f"--data {path}: {columns} column(s) a row; the model takes {width} input(s): give "
                        f"{width} columns (its inputs), or {width + 1} (its inputs, then a target or label, not used)")


def _range_rows(width: int, lo: float, hi: float) -> data_stage.Dataset:
    """Points of the range, standing in for data where none was given."""
    if width == 1:
        x = np.linspace(lo, hi, RANGE_ROWS, dtype=np.float32).reshape(-1, 1)
    else:
        x = np.random.default_rng(3).uniform(lo, hi, size=(RANGE_ROWS, width)).astype(np.float32)
    names = tuple("x" if width == 1 else f"x{k + 1}" for k in range(width))
    return data_stage.Dataset(x, np.zeros((len(x), 0), np.float32), f"the range [{lo:g}, {hi:g}]", names, (lo, hi))


def _fed(shape: tuple[int, ...]) -> str:
    return f" ({int(np.prod(shape))} values, fed row-major)" if len(shape) > 1 else ""


def _layer_of(own_model: own.KerasModel | None, tfl: TfliteModel) -> Callable[[Any], str]:
    if own_model is None:
        return lambda op: ""
    return lambda op: own_model.layer_of(tfl.tensors[op.outputs[0]].name) if op.outputs else ""


def _tolerance(args: argparse.Namespace, tfl: TfliteModel, classify: bool) -> float:
    if args.tolerance_lsb:
        return args.tolerance_lsb
    hidden = tuple(range(max(sum(op.op in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") for op in tfl.operators) - 1, 0)))
    return check.classify_tolerance_lsb(hidden) if classify else check.default_tolerance_lsb(hidden)


def _labels(args: argparse.Namespace, outputs: int, classify: bool) -> tuple[str, ...]:
    """--labels under description.LABEL_RULE, the rule a CSV's label column keeps: each item without
    the spaces around it; `--labels ''` names no labels and a model that is no classifier has none to
    name, so both are refused rather than ignored. Without the flag a classifier's labels are 0, 1, ..."""
    given = args.labels
    if given is not None and not classify:
        raise OwnUsageError(f"--labels {given!r}: the model does not end in SOFTMAX, so it is not a classifier and "
                            "has no classes to name; leave --labels out")
    if not classify:
        return ()
    if given is not None and not description.label_text(given):
        raise OwnUsageError(f"--labels {given!r}: no labels given; name the model's {outputs} classes in output "
                            "order, comma-separated (or leave --labels out for 0, 1, ...)")
    labels = (tuple(description.label_text(item) for item in given.split(",")) if given is not None
              else tuple(str(k) for k in range(outputs)))
    try:
        description.check_labels(labels, outputs)
    except ValueError as bad:
        raise OwnUsageError(f"{f'--labels {given!r}' if given is not None else 'the model'}: {bad}") from None
    return labels


def prepare(args: argparse.Namespace, say) -> dict[str, Any]:
    """The int8 model, its check and its files, for build.build to report and write."""
    own_model = None
    if args.keras:
        own_model = own.load_keras(args.keras)
        width = own_model.width
        rows = _rows(args.data, width) if args.data else None
        if rows is None and not args.input_range:
            raise OwnUsageError(f"--keras {args.keras}: give --data FILE.csv (the model's inputs, to calibrate on)"
                                + (" or --input-range LO HI" if width == 1 else f"; a model of {width} inputs needs data"))
        if rows is None and width != 1:
            raise OwnUsageError(f"--keras {args.keras}: --input-range calibrates a one-input model; this one takes "
                                f"{width} inputs: give --data FILE.csv")
        input_range = tuple(args.input_range) if args.input_range else rows.default_range
        if rows is not None and args.input_range:
            outside = (rows.x < input_range[0]) | (rows.x > input_range[1])
            if outside.any():
                row = int(outside.any(axis=1).argmax())
                raise OwnUsageError(f"--input-range {input_range[0]:g} {input_range[1]:g} does not contain the data: "
                                    f"{rows.where(row)}")
        samples = quantize.calibration_rows(own_model.model, rows.x, own_model.input_shape) if rows is not None \
            else quantize.calibration_inputs(*input_range, 1)
        say(f"model: {args.keras}: Keras, input shape {own_model.input_shape}{_fed(own_model.input_shape)}, "
            f"{own_model.outputs} output(s); calibrating on {'--data' if rows is not None else 'the --input-range'}")
        refused = keras_ops.refusal(own_model, tflm_ops.resolver_method, tflm_ops.TREE)
        if refused:  # before calibration, which can die natively on such a layer
            raise own.OwnModelError(f"{own_model.source}: {refused}")
        tflite = own.convert(own_model, samples, per_channel=args.per_channel)
        tfl = tflite_model.read(tflite)
        quantize.require_int8_io(tfl)
        float_fn, float_name = own_model, f"Keras model {Path(args.keras).name}"
    else:
        int8_file = own.read_tflite(args.tflite)
        tflite, tfl = int8_file.tflite, int8_file.model
        width = emit.width(tfl.input.shape)
        i = tfl.input
        scale, zp = float(i.scales[0]), int(i.zero_points[0])
        input_range = ((-128 - zp) * scale, (127 - zp) * scale)
        if args.input_range:
            raise OwnUsageError("--input-range does not apply to --tflite: an int8 model's input range is its own "
                                f"quantization ([{input_range[0]:g}, {input_range[1]:g}] for this one)")
        rows = _rows(args.data, width) if args.data else None
        float_fn, float_name = own.float_model(args.float_model, width) if args.float_model else (None, None)
        say(f"model: {args.tflite}: int8 TFLite, input shape {tfl.input.shape[1:]}{_fed(tfl.input.shape[1:])}, "
            f"{emit.width(tfl.output.shape)} output(s); deployed as it is ({len(tflite)} bytes, SHA-256 "
            f"{tfl.sha256[:12]}); input range from its quantization [{input_range[0]:g}, {input_range[1]:g}]")
    input_range = (float(input_range[0]), float(input_range[1]))
    too_big = flash_refusal(len(tflite), args.engine)
    if too_big:  # before the check's minutes over a model that could never be flashed
        raise OwnUsageError(f"--engine {args.engine}: {too_big}")
    layer_of = _layer_of(own_model, tfl)
    aot_refused = reference.aot_refusal(tfl)  # why the AOT engine cannot run it, or None
    if args.engine == "tflm":
        tflm_ops.require_ops(tfl, layer_of)
        found = quantize.per_channel_weights(tfl)
        if found and args.tflite:
            raise OwnUsageError(
                f"--tflite {args.tflite}: FULLY_CONNECTED weights quantized per channel: {', '.join(found)}; the "
                "Nano's TFLM library reads only the first scale and would answer wrong without an error. Convert "
                "with converter._experimental_disable_per_channel_quantization_for_dense_layers = True, or use "
                "--engine aot (it computes per-channel weights)")
        quantize.require_per_tensor(tfl)
    else:
        if aot_refused:
            op = next((o for o in tfl.operators if aot_refused.startswith(f"op {o.index} ")), None)
            layer = layer_of(op) if op is not None else ""
            raise OwnUsageError(f"--engine aot: {aot_refused}{f' (layer {layer})' if layer else ''}")

    judged = rows if rows is not None else _range_rows(width, *input_range)
    judged = judged.subset(data_stage.sample_rows(len(judged.x), JUDGED_DATA_ROWS))
    classify = bool(tfl.operators) and tfl.operators[-1].op == "SOFTMAX"
    labels = _labels(args, emit.width(tfl.output.shape), classify)
    tolerance = _tolerance(args, tfl, classify)
    by_decisions = classify and args.tolerance_lsb is None and float_fn is not None  # judged by its top class
    result = check_own.run(tflite, tfl, judged, input_range, float_fn, float_name, tolerance, rows is not None,
                           gate_steps=not by_decisions)
    board: dict[int, np.ndarray] = {}
    if args.engine == "tflm" and result.reference_applies:
        board, board_warning = quantize.board_expectations(tfl, result.sweep_codes)
        if board_warning:
            result.warnings.append(board_warning)

    plan = None
    if aot_refused is None:
        _, plan, too_big = aot.plan_of(tfl)
        if too_big and args.engine == "aot":
            raise OwnUsageError(f"--engine aot: {too_big}")
    arena = oracle.arena_bytes(tflite) if oracle.tflm_available() else 0
    ram = tflm_ram_warning(arena, emit.width(tfl.input.shape), emit.width(tfl.output.shape))
    if ram and args.engine == "tflm":
        result.warnings.append(ram)
    name = Path(args.keras or args.tflite).stem
    facts = emit.facts(tfl, name, input_range, arena, tolerance if float_fn is not None else None,
                       task=description.CLASSIFY if classify else description.REGRESS, labels=labels,
                       gate="decisions" if by_decisions else "steps")
    sources = emit.sources(tflite, tfl, facts, result.sweep_meta(board), result.probes.tolist(), engine=args.engine)
    say(f"int8: input scale {facts.input_scale:.6g} zp {facts.input_zero_point}, output scale {facts.output_scale:.6g} "
        f"zp {facts.output_zero_point}, range [{input_range[0]:g}, {input_range[1]:g}], ops {', '.join(tfl.ops)}, "
        f"arena {facts.arena} B" + ("; TFLM engine only" if aot_refused else ""))
    if plan is not None:
        say(f"aot plan: arena {plan['arena_bytes']} B, {plan['peak_live_bytes']} B of tensors alive at the peak "
            f"({plan['peak_op']}); TFLM's arena {facts.arena_measured} B as the host measured it")
    for line in result.lines():
        say(line)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    r = own_report.assemble(facts, result, args.engine, len(tflite), str(args.keras or args.tflite),
                            judged.source if rows is not None else None)
    r["model"]["aot_plan"] = plan
    return {"sources": sources, "report": r, "aot": aot_refused is None}
