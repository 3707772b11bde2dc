"""python -m pipeline.build: (x, y) data -> trained Keras model -> checked int8 model -> firmware sources + report."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pipeline import data as data_stage
from pipeline.files import OutputError, write_all
from pipeline.deployed import MODEL_DIR, ROOT

MODELS = {"neuron": (), "two-layer": (2,)}


class UsageError(ValueError):
    """Arguments that cannot work together."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.build",
        description="Train a small Keras model on (x, y) data, convert it to a full-integer int8 TFLite model, "
                    "check that the int8 arithmetic matches Python, and emit firmware sources and a report.",
        epilog="CSV format: one row per example, numbers separated by commas; the last --outputs column(s) are the "
               "targets, the columns before them the inputs; an optional first row of column names; blank lines and "
               "lines starting with # are skipped. Exit status: 0 built, 1 the model failed a check, 2 bad data or arguments.")
    p.add_argument("--data", type=Path, metavar="FILE.csv", help="training data (default: the seed lesson's xs -1..4, y = 2x - 1)")
    p.add_argument("--outputs", type=int, default=1, metavar="N", help="number of output columns at the end of each CSV row (default 1)")
    p.add_argument("--model", choices=sorted(MODELS), default="neuron",
                   help="neuron: one Dense(1) (default); two-layer: Dense(2) -> Dense(1), as in the lesson")
    p.add_argument("--hidden", metavar="N,N,...", help="hidden Dense layer sizes, e.g. 16,16 (replaces --model)")
    p.add_argument("--activation", choices=("linear", "relu", "relu6"), default="linear",
                   help="activation of the hidden layers (default linear; relu for data that is not linear)")
    p.add_argument("--trainer", choices=("fit", "tape"), default="fit",
                   help="fit: the lesson's Keras setup as compiled steps (default); tape: the lesson's hand-written "
                        "GradientTape loop for the single neuron (w = b = 10, MSE, lr 0.09, 50 steps)")
    p.add_argument("--epochs", type=int, help="full-batch training steps (default 500; 50 with --trainer tape)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01; 0.09 with --trainer tape)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default sgd, as in the lesson")
    p.add_argument("--seed", type=int, default=0, help="random seed: same arguments, same weights and bytes (default 0)")
    p.add_argument("--input-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="input range the int8 model is calibrated for; inputs outside it saturate (default: -1 12 for "
                        "the seed data, so the lesson's x = 10 is covered; the data's min and max for a CSV)")
    p.add_argument("--engine", choices=("tflm", "aot"), default="tflm",
                   help="engine the firmware will run (default tflm: Dense weights must then be per-tensor)")
    p.add_argument("--per-channel", action="store_true",
                   help="quantize Dense weights per output channel (refused for --engine tflm: the Nano's TFLM reads one scale)")
    p.add_argument("--tolerance-lsb", type=float, metavar="STEPS",
                   help="largest float-vs-int8 error allowed inside the calibrated range, in output quantization steps (default 4)")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="folder for the firmware model sources (default firmware/model)")
    p.add_argument("--report-dir", type=Path, default=ROOT / "build", help="folder for report.json, report.md, fit.png, loss.png (default build)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the written files")
    return p.parse_args(argv)


def _hidden(args: argparse.Namespace) -> tuple[tuple[int, ...], str]:
    if args.hidden is None:
        return MODELS[args.model], args.model
    try:
        sizes = tuple(int(s) for s in args.hidden.split(","))
    except ValueError:
        raise UsageError(f"--hidden {args.hidden!r}: expected sizes like 16,16") from None
    if not sizes or any(s < 1 or s > 256 for s in sizes):
        raise UsageError(f"--hidden {args.hidden!r}: each size must be 1..256")
    return sizes, f"mlp-{'x'.join(map(str, sizes))}-{args.activation}"


def _input_range(args: argparse.Namespace, dataset: data_stage.Dataset) -> tuple[float, float]:
    lo, hi = args.input_range if args.input_range else dataset.default_range
    if not (lo < hi) or not all(map(lambda v: abs(v) < 1e30, (lo, hi))):
        raise UsageError(f"--input-range {lo:g} {hi:g}: need finite LO < HI")
    outside = (dataset.x < lo) | (dataset.x > hi)
    if outside.any():
        row = int(outside.any(axis=1).argmax())
        raise UsageError(f"--input-range {lo:g} {hi:g} does not contain the data: row {row + 1} has input "
                         f"{dataset.x[row].tolist()}")
    return float(lo), float(hi)


def _validate(args: argparse.Namespace) -> None:
    if args.outputs < 1:
        raise UsageError("--outputs must be at least 1")
    if args.epochs is not None and not 1 <= args.epochs <= 100000:
        raise UsageError("--epochs must be 1..100000")
    if args.lr is not None and not 0 < args.lr < 100:
        raise UsageError("--lr must be > 0 and < 100")
    if args.tolerance_lsb is not None and not args.tolerance_lsb > 0:
        raise UsageError("--tolerance-lsb must be > 0")
    if args.per_channel and args.engine == "tflm":
        raise UsageError("--per-channel is refused for --engine tflm: the Nano's TFLM library reads only the first "
                         "scale of FULLY_CONNECTED weights and would answer wrong without an error; use --engine aot")
    if args.trainer == "tape" and (args.hidden or args.model != "neuron"):
        raise UsageError("--trainer tape trains the lesson's single neuron only (no --hidden, --model neuron)")


def build(args: argparse.Namespace, say=print) -> dict[str, Any]:
    """Runs every stage; writes nothing until all of them have passed."""
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = now - mark
        mark = now

    _validate(args)
    dataset = data_stage.load_csv(args.data, args.outputs) if args.data else data_stage.seed()
    hidden, name = _hidden(args)
    input_range = _input_range(args, dataset)
    lap("data")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from pipeline.capture import fd_output
    with fd_output(2):  # TensorFlow's import-time log lines about absent GPUs
        import numpy as np
        from pipeline import check, emit, explain, oracle, quantize, report, tflite_model, train
    lap("import")

    tape = args.trainer == "tape"
    config = train.TrainConfig(hidden, args.activation, args.trainer,
                               args.epochs or (50 if tape else 500), args.lr or (0.09 if tape else 0.01),
                               args.optimizer, args.seed)
    say(f"data: {dataset.source}: {len(dataset.x)} rows, {dataset.inputs} input(s), {dataset.outputs} output(s)")
    trained = train.train(dataset, config, None if args.quiet else train.progress_bar())
    lap("train")
    if tape:
        for step in trained.trajectory:
            say(f"  step {step['epoch']:3d}: w = {step['w']:.4f}, b = {step['b']:.4f}, loss = {step['loss']:.5f}")
    say(f"trained {name} ({config.trainer}, {config.epochs} epochs, {config.optimizer} lr {config.lr:g}) in "
        f"{trained.seconds:.2f} s: loss {trained.losses[-1]:.6g}")

    layers = explain.layers(trained.model)
    equation = explain.equation(layers, dataset.names, dataset.inputs)
    small = dataset.inputs == 1 and all(layer.units <= 4 for layer in layers)
    by_hand = explain.hand_computation(layers, check.LESSON_X) if small and len(layers) > 1 else []
    for k, layer in enumerate(layers, start=1):
        say(f"  layer {k}: weights {np.round(layer.weights, 6).tolist()}, biases {np.round(layer.biases, 6).tolist()}")
    for line in equation or []:
        say(f"  {line}")
    if by_hand:
        predicted = float(trained.model(np.array([[check.LESSON_X]], dtype=np.float32))[0, 0])
        say(f"  by hand at x = {check.LESSON_X:g}:")
        for line in by_hand:
            say(f"    {line}")
        say(f"    predict({check.LESSON_X:g}) = {predicted:.6f}; by hand - predict = "
            f"{float(explain.by_hand(layers, np.array([[check.LESSON_X]]))[0, 0]) - predicted:.2g}")
    lap("explain")

    tflite = quantize.convert(trained.model, input_range, per_channel=args.per_channel)
    tfl = tflite_model.read(tflite)
    quantize.require_int8_io(tfl)
    if args.engine == "tflm":
        quantize.require_per_tensor(tfl)
    lap("quantize")

    tolerance = args.tolerance_lsb or check.DEFAULT_TOLERANCE_LSB
    result = check.run(trained.model, tflite, tfl, dataset, input_range, tolerance)
    lap("check")

    arena = oracle.arena_bytes(tflite) if oracle.tflm_available() else 0
    model_facts = emit.facts(tfl, name, input_range, arena, tolerance)
    sweep = {"codes": result.sweep_codes.tolist(), "float": [[round(float(v), 6) for v in row] for row in result.sweep_float]}
    sources = emit.sources(tflite, tfl, model_facts, sweep)
    lap("emit")

    lesson = None
    if dataset.inputs == 1:
        point = result.points[-1] if dataset.inputs == 1 and result.points[-1]["x"] == [check.LESSON_X] else None
        if point:
            lesson = {"x": check.LESSON_X, "float": point["float"][0], "int8": point["int8"][0], "clipped": point["clipped"]}
    r: dict[str, Any] = {
        "model": {"name": name, "inputs": dataset.inputs, "outputs": dataset.outputs, "hidden": list(hidden),
                  "activation": args.activation, "engine": args.engine, "sha256": tfl.sha256, "id": model_facts.id,
                  "tflite_bytes": len(tflite), "ops": list(tfl.ops), "arena_bytes": model_facts.arena,
                  "arena_measured_bytes": arena},
        "data": {"source": dataset.source, "rows": int(len(dataset.x)), "names": list(dataset.names)},
        "training": {"trainer": config.trainer, "epochs": config.epochs, "lr": config.lr, "optimizer": config.optimizer,
                     "seed": config.seed, "seconds": trained.seconds, "final_loss": float(trained.losses[-1]),
                     "trajectory": trained.trajectory},
        "learned": {"layers": [{"units": layer.units, "activation": layer.activation, "weights": layer.weights.tolist(),
                                "biases": layer.biases.tolist()} for layer in layers],
                    "equation": equation, "by_hand": by_hand},
        "quantization": {"input_range": list(input_range), "per_channel": model_facts.per_channel,
                         "input": {"scale": model_facts.input_scale, "zero_point": model_facts.input_zero_point},
                         "output": {"scale": model_facts.output_scale, "zero_point": model_facts.output_zero_point}},
        "check": {"oracle": "TFLM runtime (tflite-micro)" if result.tflm_checked else "integer reference only (no tflite-micro wheel)",
                  "mismatches": result.mismatches, "sweep_count": int(len(result.sweep_codes)),
                  "tolerance_lsb": tolerance, "errors": result.errors, "sweep_errors": result.sweep_errors,
                  "points": result.points},
        "lesson": lesson,
        "timings": timings,
    }
    e = result.errors
    say(f"int8: input scale {model_facts.input_scale:.6g} zp {model_facts.input_zero_point}, output scale "
        f"{model_facts.output_scale:.6g} zp {model_facts.output_zero_point}, calibrated [{input_range[0]:g}, {input_range[1]:g}], "
        f"{len(tflite)} bytes, arena {model_facts.arena} B")
    say(f"check: TFLM vs reference {result.mismatches} mismatches over {len(result.sweep_codes)} inputs"
        f"{'' if result.tflm_checked else ' (no tflite-micro: reference only)'}; float vs int8 MAE {e['mae']:.4g}, "
        f"RMSE {e['rmse']:.4g}, max {e['max_abs']:.4g} ({e['max_lsb']:.2f} LSB), L2 rel {e['l2_relative']:.3g}")
    if lesson:
        say(f"x = {check.LESSON_X:g}: float {lesson['float']:.4f}, int8 {lesson['int8']:.4f}{' (clipped)' if lesson['clipped'] else ''}")

    pictures = {"fit.png": report.fit_png(r, result.curve, dataset.x, dataset.y),
                "loss.png": report.loss_png(trained.losses, f"{name}: training loss")}
    lap("report")
    outputs = {args.out / file: content for file, content in sources.items()}
    outputs.update(report.files(args.report_dir, r, pictures))
    for path in write_all(outputs):
        print(f"wrote {_display(path)}")
    return r


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    say = (lambda *a, **k: None) if args.quiet else print
    try:
        build(args, say)
    except (data_stage.DataError, UsageError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pipeline.check import CheckError
        from pipeline.quantize import QuantizationError
        from pipeline.reference import UnsupportedModelError
        from pipeline.train import TrainingError
        if isinstance(exc, (CheckError, QuantizationError, UnsupportedModelError, TrainingError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
