"""The build's stages: (x, y) data -> trained Keras model (or a given one) -> checked int8 model ->
firmware sources + report. The command line (pipeline.build, its arguments in pipeline.build_args) and
the Python API (pipeline.api) run them."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

import pipeline
from pipeline import build_args
from pipeline.build_args import UsageError
from pipeline.rows import text as row_text
from pipeline.board import flash_refusal, tflm_ram_warning
from pipeline.model import data as data_stage
from pipeline.emit.files import write_all

if TYPE_CHECKING:  # the TensorFlow side, imported by the build only once its arguments have passed
    from pipeline.emit.report import Training
    from pipeline.int8.tflite_model import TfliteModel

def _input_range(args: argparse.Namespace, dataset: data_stage.Dataset) -> tuple[float, float]:
    """The calibrated range: given and checked against the data, or the data's own when it can be one."""
    if not args.input_range:
        problem = data_stage.range_problem(dataset)
        if problem:
            raise data_stage.DataError(problem)
        return dataset.default_range
    lo, hi = args.input_range
    outside = (dataset.x < lo) | (dataset.x > hi)
    if outside.any():
        row = int(outside.any(axis=1).argmax())
        column = int(outside[row].argmax())
        raise UsageError(f"--input-range {lo:g} {hi:g} does not contain the data: {dataset.where(row)} has input "
                         f"{column + 1} = {dataset.x[row, column]:g} (its row: {row_text(dataset.x[row])})")
    return float(lo), float(hi)


def split(dataset: data_stage.Dataset, fraction: float | None, seed: int
          ) -> tuple[data_stage.Dataset, data_stage.Dataset | None]:
    """A classifier's training rows and the hold-out rows training never sees; a regression's rows and None."""
    if not dataset.classify:
        return dataset, None
    train_rows, held = data_stage.holdout_split(dataset.classes, data_stage.HOLDOUT if fraction is None else fraction,
                                                seed)
    return dataset.subset(train_rows), dataset.subset(held)


def _data_lines(dataset: data_stage.Dataset, train_set: data_stage.Dataset, holdout: data_stage.Dataset | None,
                fraction: float) -> list[str]:
    """What the build says about the data: its size, the task it chose and why, a classifier's classes."""
    if holdout is None:
        task = f"; task regress ({dataset.task_reason})" if dataset.task_reason else ""
        return [f"data: {dataset.source}: {len(dataset.x)} rows, {dataset.inputs} input(s), {dataset.outputs} output(s)"
                f"{task}"]
    total, train_counts, held_counts = dataset.counts(), train_set.counts(), holdout.counts()
    weights = data_stage.class_weights(train_counts)
    classes = ", ".join(f"{label} {int(n)}" for label, n in zip(dataset.labels, total))
    return [f"data: {dataset.source}: {len(dataset.x)} rows, {dataset.inputs} input(s), {len(dataset.labels)} classes; "
            f"task classify ({dataset.task_reason})",
            f"classes (in {data_stage.LABEL_ORDER} label order, the outputs' order): {classes}",
            f"hold-out: {fraction:g} of each class, seed-chosen: {len(holdout.x)} rows "
            f"({', '.join(str(int(n)) for n in held_counts)}), training {len(train_set.x)} rows "
            f"({', '.join(str(int(n)) for n in train_counts)}); class weights "
            f"{', '.join(f'{w:.3g}' for w in weights)} (balanced: rows / (classes * class rows))"]


@dataclass
class _Model:
    """The model stage's outcome, trained or given: the int8 model and what the check judges it on."""

    name: str
    tflite: bytes
    tfl: TfliteModel
    input_range: tuple[float, float]
    data: data_stage.Dataset
    """A trained model's training rows; a given model's rows to judge it on (given.judged_rows)."""
    float_model: Callable[[Any], Any] | None
    float_name: str | None = None
    data_given: bool = True
    layer_of: Callable[[Any], str] = lambda op: ""
    """The Keras layer an int8 op came from, for messages ('' where unknown)."""
    training: Training | None = None
    """A trained model's run, for the report; None for a given model."""
    holdout: data_stage.Dataset | None = None
    early: list[str] = field(default_factory=list)
    """Warnings about the hold-out rows, said before training."""
    classify: bool = False
    labels: tuple[str, ...] = ()
    tolerance: float = 0.0
    """Float-vs-int8 steps allowed inside the range: --tolerance-lsb, or the default for its depth."""
    aot_refused: str | None = None
    """Why the AOT engine cannot run the model (a given one, deployed on TFLM); None: it can."""
    source: str | None = None
    """A given model's file (or the API's argument), for the report."""
    keras_in_x: Any = None
    """A trained model called on the data's x (train.centered); None for a given model."""


def read_given(args: argparse.Namespace) -> Any:
    """The command line's given model (given.Given): --keras or --tflite, --data and --float-model read
    from their files."""
    from pipeline.model import given, load
    if args.keras:
        model = given.Given(f"--keras {args.keras}", Path(args.keras).stem, str(args.keras),
                            keras=load.load_keras(args.keras))
    else:
        model = given.Given(f"--tflite {args.tflite}", Path(args.tflite).stem, str(args.tflite),
                      int8=load.read_tflite(args.tflite))
    model.data = given.rows(args.data, model.width) if args.data else None
    if args.float_model:
        model.float_model = load.float_model(args.float_model, model.width)
    return model


def build(args: argparse.Namespace, say=print, supplied: Any = None) -> dict[str, Any]:
    """Runs every stage in order, for a model it trains or one it is given: model -> int8 -> check ->
    sources -> report; writes nothing until all of them have passed. supplied: a given model already
    read (given.Given, from pipeline.api); else --keras or --tflite is read here."""
    timings: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        """Ends a stage; a Ctrl-C that native code swallowed during it still stops the build here."""
        nonlocal mark
        now = time.perf_counter()
        timings[name] = now - mark
        mark = now
        if pipeline.interrupted():
            raise KeyboardInterrupt

    build_args.validate(args)
    given_model = bool(args.keras or args.tflite)
    if given_model:
        _imports()
        lap("import")
        model = _given(args, say, supplied if supplied is not None else read_given(args))
    else:
        model = _trained(args, say, lap, timings)
    from pipeline.emit import aot, report
    from pipeline.emit import sources as emit
    from pipeline.int8 import description, oracle
    from pipeline.model import check, given, quantize

    tfl, tflite, input_range, tolerance = model.tfl, model.tflite, model.input_range, model.tolerance
    by_decisions = model.classify and args.tolerance_lsb is None and model.float_model is not None  # by its top class
    result = check.run(tflite, tfl, model.data, input_range, model.float_model, tolerance,
                       trained=model.training is not None, float_name=model.float_name, data_given=model.data_given,
                       gate_steps=not by_decisions)
    board: dict[int, Any] = {}
    if args.engine == "tflm" and result.reference_applies:
        board, board_warning = quantize.board_expectations(tfl, result.sweep_codes)
        if board_warning:
            result.warnings.append(board_warning)
    classified = (None if model.holdout is None else
                  check.classify(model.keras_in_x, tflite, tfl, model.holdout, model.data.counts(),
                                 model.training.trained.class_weights))
    decisions = (check.decision_gate(model.float_model, tflite, tfl, model.data, classified) if by_decisions
                 else None)
    if given_model:
        result.decisions = decisions
    lap("check")

    plan = None
    if model.training is not None:
        too_big = flash_refusal(len(tflite), "tflm")
        if too_big:  # a trained model is emitted for both engines: TFLM's code is the larger
            raise UsageError(f"{too_big}: train a smaller network (--hidden)")
    elif model.aot_refused is None:
        _, plan, too_big = aot.plan_of(tfl)
        if too_big and args.engine == "aot":
            raise given.ArgumentError(f"--engine aot: {too_big}")
    arena = oracle.arena_bytes(tflite) if oracle.tflm_available() else 0
    ram = tflm_ram_warning(arena, emit.width(tfl.input.shape), emit.width(tfl.output.shape))
    if ram and args.engine == "tflm" and given_model:
        result.warnings.append(ram)
    facts = emit.facts(tfl, model.name, input_range, arena, tolerance if model.float_model is not None else None,
                       task=description.CLASSIFY if model.classify else description.REGRESS, labels=model.labels,
                       gate="decisions" if by_decisions else "steps")
    held = None if model.holdout is None else (model.holdout.x, model.holdout.classes)
    sources = emit.sources(tflite, tfl, facts, result.sweep_meta(board), result.probes.tolist(), holdout=held,
                           engine=args.engine if given_model else "aot")
    lap("emit")
    if model.training is not None:
        _, plan, _ = aot.plan_of(tfl)
    _say_int8(say, facts, tfl, len(tflite), plan, given_model, model.aot_refused)
    for line in result.lines():
        say(line)
    for line in classified.lines_out() if classified else []:
        say(line)
    if decisions is not None and not given_model:
        say(check.decision_line(decisions))
    for warning in result.warnings + (classified.warnings if classified else []):
        print(f"warning: {warning}", file=sys.stderr)
    if classified:
        classified.warnings[:0] = model.early

    if model.training is not None:
        model.training.rows = report.sample(model.keras_in_x, tfl, model.data)
    r = report.assemble(facts=facts, result=result, engine=args.engine, tflite_bytes=len(tflite), plan=plan,
                        source=None if model.training is not None else model.source,
                        data=model.data.source if model.data_given else None, training=model.training,
                        classification=classified.as_dict() if classified else None)
    if decisions is not None and r.get("classification") is not None:
        r["classification"]["decisions"] = decisions
    with ThreadPoolExecutor(max_workers=1) as pool:
        on_chip = pool.submit(_footprint, sources) if args.footprint else None
        pictures = _pictures(model, result, r, classified) if model.training is not None else {}
        r["footprint"] = on_chip.result() if on_chip else None
    _say_footprint(r["footprint"], say)
    lap("report")
    _write(args, sources, report.files(args.report_dir, r, pictures))
    return r


def _imports() -> None:
    """The TensorFlow side, imported here so that a missing install is one line naming it."""
    with _build_imports():
        from pipeline.emit import aot, report, sources  # noqa: F401
        from pipeline.emit import tflm_ops  # noqa: F401
        from pipeline.model import check, explain, given, keras_ops, load, quantize, train  # noqa: F401
        from pipeline.int8 import oracle, tflite_model  # noqa: F401


def _trained(args: argparse.Namespace, say, lap, timings: dict[str, float]) -> _Model:
    """The data, training and the int8 conversion of the model it trained."""
    everything = data_stage.load_csv(args.data, args.outputs, args.task) if args.data else data_stage.seed()
    build_args.validate_task(args, everything)
    dataset, holdout = split(everything, args.holdout, args.seed)
    hidden, name = build_args.hidden_layers(args)
    if dataset.classify:
        name = f"{name}-classify-{len(dataset.labels)}"
    input_range = _input_range(args, dataset)
    lap("data")
    _imports()
    from pipeline.emit import report
    from pipeline.int8 import tflite_model
    from pipeline.model import check, explain, quantize, train
    lap("import")

    tape = args.trainer == "tape"
    config = train.TrainConfig(hidden, args.activation, args.trainer,
                               args.epochs or (50 if tape else 500), args.lr or (0.09 if tape else 0.01),
                               args.optimizer, args.seed, task=dataset.task)
    for line in _data_lines(everything, dataset, holdout, data_stage.HOLDOUT if args.holdout is None else args.holdout):
        say(line)
    early = data_stage.holdout_warnings(holdout.labels, holdout.counts()) if holdout is not None else []
    for warning in early:
        print(f"warning: {warning}", file=sys.stderr)
    center = data_stage.input_center(input_range)
    shifted = _shifted(dataset, center)  # what the model is trained and calibrated on
    trained = train.train(shifted, config, None if args.quiet else train.progress_bar())
    lap("train")
    for step in trained.trajectory:
        say(f"  step {step['epoch']:3d}: w = {step['w']:.4f}, b = {step['b']:.4f}, loss = {step['loss']:.5f}")
    steps = "epochs" if len(dataset.x) <= config.batch_rows else f"steps of {config.batch_rows} rows"
    say(f"trained {name} ({config.trainer}, {config.epochs} {steps}, {config.optimizer} lr {config.lr:g}) in "
        f"{trained.seconds:.2f} s: loss {trained.losses[-1]:.6g}"
        + ("; inputs standardized for training (SGD diverged on them as given), folded into the first layer"
           if trained.standardized else ""))
    if center:
        say(f"inputs centered on {center:g} (the calibrated range lies far from 0): the model takes x - {center:g}, "
            "which the device computes before quantizing")
    explanation = explain.explain(trained.model, dataset.names, dataset.inputs, center)
    for line in explanation.lines():
        say(f"  {line}")
    lap("explain")

    tflite = quantize.convert(trained.model, (input_range[0] - center, input_range[1] - center),
                              per_channel=args.per_channel, rows=shifted.x)
    tfl = replace(tflite_model.read(tflite), input_center=center)
    quantize.require_int8_io(tfl)
    if args.engine == "tflm":
        quantize.require_per_tensor(tfl)
    lap("quantize")
    training = report.Training(dataset, config, trained, explanation, hidden, args.activation, timings)
    tolerance = args.tolerance_lsb or (check.classify_tolerance_lsb(hidden) if dataset.classify
                                       else check.default_tolerance_lsb(hidden))
    in_x = train.centered(trained.model, center)
    return _Model(name, tflite, tfl, input_range, dataset, lambda x: check.float_outputs(in_x, x), keras_in_x=in_x,
                  training=training, holdout=holdout, early=early, classify=dataset.classify, labels=dataset.labels,
                  tolerance=tolerance)


def _shifted(dataset: data_stage.Dataset, center: float) -> data_stage.Dataset:
    """The rows a centered model trains and calibrates on: x - center in float32, as the device computes it."""
    if not center:
        return dataset
    return replace(dataset, x=(dataset.x.astype(np.float32) - np.float32(center)).astype(dataset.x.dtype))


def _given(args: argparse.Namespace, say, supplied: Any) -> _Model:
    """A model trained elsewhere: a Keras one converted as a trained one is, or an int8 one taken as it is."""
    from pipeline.emit import sources as emit
    from pipeline.emit import tflm_ops
    from pipeline.int8 import tflite_model
    from pipeline.model import given, keras_ops, load, quantize
    keras_model, data, width = supplied.keras, supplied.data, supplied.width
    if keras_model is not None:
        input_range = given.keras_range(supplied.where, width, data,
                                        tuple(args.input_range) if args.input_range else None)
        say(f"model: {supplied.source}: Keras, input shape {keras_model.input_shape}"
            f"{given.fed(keras_model.input_shape)}, {keras_model.outputs} output(s); calibrating on "
            f"{'--data' if data is not None else 'the --input-range'}")
        refused = keras_ops.refusal(keras_model, tflm_ops.resolver_method, tflm_ops.TREE)
        if refused:  # before calibration, which can die natively on such a layer
            raise load.ModelFileError(f"{keras_model.source}: {refused}")
        try:  # as a trained model: the input box (which the check judges too) and the data's rows
            tflite = quantize.convert(keras_model.model, input_range, args.per_channel,
                                      None if data is None else data.x, keras_model.input_shape)
        except Exception as exc:  # ConverterError, or a calibration failure inside the converter
            raise keras_model.conversion_error(exc) from None
        tfl = tflite_model.read(tflite)
        quantize.require_int8_io(tfl)
        float_model, float_name = keras_model, f"Keras model {Path(supplied.source).name}"
    else:
        tflite, tfl = supplied.int8.tflite, supplied.int8.model
        input_range = given.tflite_range(tfl, args.input_range)
        float_model, float_name = supplied.float_model or (None, None)
        say(f"model: {supplied.source}: int8 TFLite, input shape {tfl.input.shape[1:]}{given.fed(tfl.input.shape[1:])}, "
            f"{emit.width(tfl.output.shape)} output(s); deployed as it is ({len(tflite)} bytes, SHA-256 "
            f"{tfl.sha256[:12]}); input range from its quantization [{input_range[0]:g}, {input_range[1]:g}]")
    input_range = (float(input_range[0]), float(input_range[1]))
    layer_of = ((lambda op: keras_model.layer_of(tfl.tensors[op.outputs[0]].name) if op.outputs else "")
                if keras_model is not None else (lambda op: ""))
    model = _Model(supplied.name, tflite, tfl, input_range, given.judged_rows(data, width, input_range), float_model,
                   float_name, data is not None, layer_of, source=supplied.source)
    model.aot_refused = _engine_refusal(args, model, supplied)
    model.classify = given.is_classifier(tfl)
    model.labels = given.labels(args.labels, emit.width(tfl.output.shape), model.classify)
    model.tolerance = given.tolerance(args.tolerance_lsb, tfl, model.classify)
    return model


def _engine_refusal(args: argparse.Namespace, model: _Model, supplied: Any) -> str | None:
    """Refuses a given model the engine cannot run, before the check's minutes; returns why the AOT
    engine cannot run it (None: it can), for a model deployed on TFLM."""
    from pipeline.emit import tflm_ops
    from pipeline.int8 import reference
    from pipeline.model import given, quantize
    tfl = model.tfl
    too_big = flash_refusal(len(model.tflite), args.engine)
    if too_big:  # before the check's minutes over a model that could never be flashed
        raise given.ArgumentError(f"--engine {args.engine}: {too_big}")
    aot_refused = reference.aot_refusal(tfl)
    if args.engine == "tflm":
        tflm_ops.require_ops(tfl, model.layer_of)
        found = quantize.per_channel_weights(tfl)
        if found and supplied.int8 is not None:
            raise given.ArgumentError(
                f"{supplied.where}: FULLY_CONNECTED weights quantized per channel: {', '.join(found)}; the "
                "Nano's TFLM library reads only the first scale and would answer wrong without an error. Convert "
                "with converter._experimental_disable_per_channel_quantization_for_dense_layers = True, or use "
                "--engine aot (it computes per-channel weights)")
        quantize.require_per_tensor(tfl)
    elif aot_refused:
        op = next((o for o in tfl.operators if aot_refused.startswith(f"op {o.index} ")), None)
        layer = model.layer_of(op) if op is not None else ""
        raise given.ArgumentError(f"--engine aot: {aot_refused}{f' (layer {layer})' if layer else ''}")
    return aot_refused


def _say_int8(say, facts, tfl, size: int, plan: dict[str, Any] | None, given_model: bool,
              aot_refused: str | None) -> None:
    """The int8 model's interface and memory: the calibrated range of a trained one, the ops of a given one."""
    lo, hi = facts.input_range
    interface = (f"int8: input scale {facts.input_scale:.6g} zp {facts.input_zero_point}, output scale "
                 f"{facts.output_scale:.6g} zp {facts.output_zero_point}")
    if not given_model:
        say(f"{interface}, calibrated [{lo:g}, {hi:g}], {size} bytes, arena {facts.arena} B")
        if plan["arena_bytes"]:
            say(f"aot plan: arena {plan['arena_bytes']} B, {plan['peak_live_bytes']} B of tensors alive at the peak "
                f"({plan['peak_op']})")
        return
    say(f"{interface}, range [{lo:g}, {hi:g}], ops {', '.join(tfl.ops)}, arena {facts.arena} B"
        + ("; TFLM engine only" if aot_refused else ""))
    if plan is not None:
        say(f"aot plan: arena {plan['arena_bytes']} B, {plan['peak_live_bytes']} B of tensors alive at the peak "
            f"({plan['peak_op']}); TFLM's arena {facts.arena_measured} B as the host measured it")


def _pictures(model: _Model, result, r: dict[str, Any], classified) -> dict[str, bytes]:
    """A training run's pictures: the fit, the loss, and a classifier's confusion matrix."""
    from pipeline.emit import report
    dataset, name = model.data, model.name
    pictures = {"fit.png": report.fit_png(r, result.curve, dataset.x, dataset.y),
                "loss.png": report.loss_png(model.training.trained.losses, f"{name}: training loss",
                                            "categorical cross-entropy" if dataset.classify else "MSE")}
    if classified:
        pictures["confusion.png"] = report.confusion_png(r["classification"], f"{name}: hold-out rows")
    return pictures


# Every file a build may write into --out or --report-dir. A build removes those of them it does not
# write this time (a classifier's confusion.png before a regression build's report) and keeps any
# other file there (a user's README).
BUILD_FILES = frozenset({"model_data.h", "model_data.cpp", "model_info.h", "model_aot.h", "model.json",
                         "model.tflite", "report.json", "report.md", "fit.png", "loss.png", "confusion.png"})


def _write(args: argparse.Namespace, sources: dict[str, bytes], report_files: dict[Path, bytes]) -> None:
    outputs = {args.out / file: content for file, content in sources.items()}
    outputs.update(report_files)
    unlisted = sorted({path.name for path in outputs} - BUILD_FILES)
    if unlisted:  # a new output file must be listed, or a later build would leave it stale
        raise AssertionError(f"stages.BUILD_FILES lacks {', '.join(unlisted)}")
    for path in write_all(outputs, BUILD_FILES):
        print(f"wrote {_display(path)}")


@contextlib.contextmanager
def _build_imports() -> Iterator[None]:
    """The build's TensorFlow-side imports, quiet, or a one-line error naming the install it needs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Keras imports IPython, when installed, only to detect notebooks: a second of start-up
    # for a command-line build (left alone when the build does run inside IPython).
    sys.modules.setdefault("IPython", None)
    from pipeline.capture import fd_output
    try:
        with fd_output(2):  # TensorFlow's import-time log lines about absent GPUs
            yield
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] not in ("tensorflow", "keras", "matplotlib"):
            raise
        raise UsageError(f"the build needs {missing.name}, which this install lacks: pip install -e '.[build]' "
                         "(the base install is the device side: predict, verify, emulate)") from None


def _footprint(sources: dict[str, bytes]) -> dict[str, Any]:
    """Cost on the Nano's CPU, per engine that can run the model (TFLM with $TFLM_ROOT); a machine
    without the cross tools or QEMU still builds, and says why not."""
    from pipeline.footprint import measurement as footprint
    from pipeline.emulation import qemu
    problem = qemu.toolchain_problem() or qemu.qemu_problem()
    if problem:
        return {"skipped": problem}
    try:
        return footprint.measure_sources(sources)
    except footprint.NoEngineError as exc:
        return {"skipped": str(exc)}
    except (qemu.QemuError, footprint.FootprintError, OSError) as exc:
        return {"skipped": f"measurement failed: {exc}"}


def _say_footprint(footprint: dict[str, Any] | None, say) -> None:
    """The footprint's lines; a measurement that failed (not one that cannot apply) is a warning too."""
    from pipeline.emit import report
    for line in report.footprint_lines(footprint):
        say(line)
    entries = [footprint] if footprint and "skipped" in footprint else list((footprint or {}).values())
    for entry in entries:
        if entry.get("skipped", "").startswith("measurement failed"):
            print(f"warning: footprint {entry['skipped']}", file=sys.stderr)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
