"""The build's command line: its arguments, and each checked on its own and against the others
before the seconds of importing TensorFlow (pipeline.build runs the stages)."""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Sequence

from pipeline import cli
from pipeline.errors import BadInput
from pipeline.model import data as data_stage
from pipeline.paths import MODEL_DIR, ROOT

MODELS = {"neuron": (), "two-layer": (2,)}
ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "tanh")
"""train.ACTIVATIONS, named here so --help needs no TensorFlow."""
MAX_HIDDEN_LAYERS = 8
SEED_MAX = 2**32 - 1


class UsageError(BadInput, ValueError):
    """Arguments that cannot work together."""


def _integer(text: str) -> int:
    """ASCII digits only: int() would also take '1_0' and non-ASCII digits."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _number(text: str) -> float:
    """The CSV's plain decimal syntax: float() would also take 'nan', 'inf' and '1_0'."""
    if not re.fullmatch(data_stage.NUMBER, text.strip(" ")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is beyond a 64-bit float")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "build",
        description="Train a small Keras model on (x, y) data, convert it to a full-integer int8 TFLite model, "
                    "check that the int8 arithmetic matches Python, and emit firmware sources and a report.",
        epilog="CSV format: one row per example, numbers separated by commas; the last --outputs column(s) are the "
               "targets, the columns before them the inputs; an optional first row of column names; blank lines and "
               "lines starting with # are skipped. A number is plain decimal: optional sign, ASCII digits, optional "
               "fraction, optional exponent (-1.5, .5, 2e-3); nothing else (no 1_000, inf, nan or non-ASCII digits). "
               "Classification: a last column of class labels (text; integers with --task classify) trains a softmax "
               "classifier; classes are numbered in sorted label order, and --holdout of each class's rows is kept "
               "out of training to measure accuracy, precision, recall and the confusion matrix on. "
               + cli.EXIT_STATUSES)
    p.add_argument("--data", type=Path, metavar="FILE.csv", help="training data: numbers, or numbers and a class label last (default: the seed lesson's "
                   "xs -1..4, y = 2x - 1); with --keras or --tflite, the model's inputs (a target or label after them "
                   "is allowed, and unused): calibration rows for --keras, and rows to check on")
    given = p.add_argument_group("a model trained elsewhere (no training; --data, --input-range and --engine as above)")
    given.add_argument("--keras", type=Path, metavar="FILE.keras",
                       help="a saved Keras 3 model (one input, one output) to convert to full int8, calibrated on --data "
                            "(or, for one input, over --input-range) and checked against itself")
    given.add_argument("--tflite", type=Path, metavar="FILE.tflite",
                       help="a full-int8 TFLite model to deploy as it is (its bytes unchanged); its input range is its "
                            "own quantization's")
    given.add_argument("--float-model", type=Path, metavar="FILE",
                       help="with --tflite: the float model (.keras or float .tflite) it came from, to compute the "
                            "float-vs-int8 figures and hold the device to the tolerance (without it they are not computed)")
    given.add_argument("--labels", metavar="L1,L2,...",
                       help="a given model ending in SOFTMAX: its class labels in output order (default 0, 1, ...)")
    p.add_argument("--outputs", type=_integer, default=1, metavar="N", help="number of output columns at the end of each CSV row (default 1)")
    p.add_argument("--model", choices=sorted(MODELS), default="neuron",
                   help="neuron: one Dense(1) (default); two-layer: Dense(2) -> Dense(1), as in the lesson")
    p.add_argument("--hidden", metavar="N,N,...", help="hidden Dense layer sizes, e.g. 16,16 (replaces --model)")
    p.add_argument("--task", choices=data_stage.TASKS,
                   help="classify: the last column holds class labels (any text, or integers), one softmax output per "
                        "class; regress: it holds numbers to fit (default: classify when the first data row's target "
                        "is not a number)")
    p.add_argument("--holdout", type=_number, metavar="FRACTION",
                   help=f"classifiers: the share of each class's rows held out of training, to measure accuracy on "
                        f"(default {data_stage.HOLDOUT:g}; seeded by --seed)")
    p.add_argument("--activation", choices=ACTIVATIONS, default="linear",
                   help="activation of the hidden layers (default linear; relu for data that is not linear; sigmoid "
                        "and tanh run as int8 LOGISTIC and TANH ops)")
    p.add_argument("--trainer", choices=("fit", "tape"), default="fit",
                   help="fit: the lesson's Keras setup as compiled steps (default); tape: the lesson's hand-written "
                        "GradientTape loop for the single neuron (w = b = 10, MSE, lr 0.09, 50 steps)")
    p.add_argument("--epochs", type=_integer, help="training steps, 1..100000 (default 500; 50 with --trainer tape); each "
                   f"takes the whole data up to {data_stage.BATCH_ROWS} rows, and the next {data_stage.BATCH_ROWS} rows of a seeded shuffle "
                   "beyond (so time and memory per step do not grow with the data)")
    p.add_argument("--lr", type=_number, help="learning rate (default 0.01; 0.09 with --trainer tape)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="default sgd, as in the lesson")
    p.add_argument("--seed", type=_integer, default=0,
                   help=f"random seed 0..{SEED_MAX}: same arguments, same weights and bytes (default 0)")
    p.add_argument("--input-range", type=_number, nargs=2, metavar=("LO", "HI"),
                   help="input range the int8 model is calibrated for; inputs outside it saturate (default: -1 12 for "
                        "the seed data, so the lesson's x = 10 is covered; the data's min and max for a CSV)")
    p.add_argument("--engine", choices=("tflm", "aot"), default="tflm",
                   help="engine the firmware will run (default tflm: Dense weights must then be per-tensor)")
    p.add_argument("--per-channel", action="store_true",
                   help="quantize Dense weights per output channel (refused for --engine tflm: the Nano's TFLM reads one scale)")
    p.add_argument("--tolerance-lsb", type=_number, metavar="STEPS",
                   help="largest float-vs-int8 error allowed inside the calibrated range, in output quantization steps "
                        "(default 4 + 12 per hidden layer: 4 for one neuron, 28 for --hidden 16,16; the worst measured "
                        "for each depth, with margin). A classifier is judged by its decisions (the device's top class "
                        "is the float model's on 99%% of the data and hold-out rows (2 rows may differ), hold-out accuracy at most 1 point "
                        "lower); given this, by its probabilities in steps of 1/256 instead")
    p.add_argument("--out", type=Path, default=MODEL_DIR, help="folder for the firmware model sources (default firmware/model)")
    p.add_argument("--report-dir", type=Path, default=ROOT / "build" / "report",
                   help="folder of its own for report.json, report.md, fit.png, loss.png (and confusion.png for a "
                        "classifier), replaced as a whole on each build (default build/report)")
    p.add_argument("--footprint", action=argparse.BooleanOptionalAction, default=True,
                   help="measure flash, RAM, stack and instructions per inference on the Cortex-M4 under QEMU (default "
                        "on; skipped, saying why, without gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the written files")
    return p


def hidden_layers(args: argparse.Namespace) -> tuple[tuple[int, ...], str]:
    if args.hidden is None:
        return MODELS[args.model], args.model
    if not re.fullmatch(r"[0-9]+(,[0-9]+)*", args.hidden):
        raise UsageError(f"--hidden {args.hidden!r}: expected sizes like 16,16")
    sizes = tuple(int(s) for s in args.hidden.split(","))
    if any(s < 1 or s > 256 for s in sizes):
        raise UsageError(f"--hidden {args.hidden!r}: each size must be 1..256")
    if len(sizes) > MAX_HIDDEN_LAYERS:
        raise UsageError(f"--hidden {args.hidden!r}: at most {MAX_HIDDEN_LAYERS} hidden layers")
    return sizes, f"mlp-{'x'.join(map(str, sizes))}-{args.activation}"


TRAINING_DEFAULTS = {"model": "neuron", "hidden": None, "task": None, "holdout": None, "activation": "linear",
                     "trainer": "fit", "epochs": None, "lr": None, "optimizer": "sgd"}
"""The training arguments, unset: a given model is not trained, so none of them may be set."""


def _validate_given(args: argparse.Namespace) -> None:
    """A given model (--keras, --tflite) takes no training argument, nor --outputs."""
    if args.keras and args.tflite:
        raise UsageError("--keras and --tflite each give the model: use one")
    flag = "--keras" if args.keras else "--tflite"
    for name, unset in TRAINING_DEFAULTS.items():
        if getattr(args, name) != unset:
            raise UsageError(f"--{name} trains a model, and {flag} gives one: leave it out")
    if args.outputs != 1:
        raise UsageError(f"--outputs does not apply to {flag}: the model says how many outputs it has")
    if args.float_model and not args.tflite:
        raise UsageError("--float-model goes with --tflite (a --keras model is its own float model)")


def validate(args: argparse.Namespace) -> None:
    """Every argument on its own and against the others, before the seconds of importing TensorFlow."""
    if args.float_model and not (args.keras or args.tflite):
        raise UsageError("--float-model goes with --tflite")
    if args.labels is not None and not (args.keras or args.tflite):
        raise UsageError("--labels goes with --keras or --tflite: a trained classifier's labels come from its data")
    if not 1 <= args.outputs <= 256:
        raise UsageError("--outputs must be 1..256")
    if args.outputs != 1 and not args.data and not (args.keras or args.tflite):
        raise UsageError(f"--outputs {args.outputs} needs --data: the seed lesson's data has 1 output")
    if not 0 <= args.seed <= SEED_MAX:
        raise UsageError(f"--seed {args.seed}: must be 0..{SEED_MAX} (NumPy's seed range, which Keras uses)")
    if args.epochs is not None and not 1 <= args.epochs <= 100000:
        raise UsageError("--epochs must be 1..100000")
    if args.lr is not None and not 0 < args.lr < 100:
        raise UsageError("--lr must be > 0 and < 100")
    if args.tolerance_lsb is not None and not 0 < args.tolerance_lsb <= 1e6:
        raise UsageError("--tolerance-lsb must be > 0 (and at most 1e6 steps)")
    if args.input_range:
        lo, hi = args.input_range
        if not lo < hi or not max(abs(lo), abs(hi)) < data_stage.INPUT_LIMIT:
            raise UsageError(f"--input-range {lo:g} {hi:g}: need LO < HI, both within ±{data_stage.INPUT_LIMIT:g}")
    if args.per_channel and args.engine == "tflm":
        raise UsageError("--per-channel is refused for --engine tflm: the Nano's TFLM library reads only the first "
                         "scale of FULLY_CONNECTED weights and would answer wrong without an error; use --engine aot")
    if args.keras or args.tflite:
        _validate_given(args)
        return
    if args.trainer == "tape" and (args.hidden or args.model != "neuron"):
        raise UsageError("--trainer tape trains the lesson's single neuron only (no --hidden, --model neuron)")
    if args.trainer == "tape" and args.optimizer != "sgd":
        raise UsageError("--trainer tape is the lesson's plain gradient step: no --optimizer")
    if args.holdout is not None and not 0 < args.holdout < 1:
        raise UsageError(f"--holdout {args.holdout:g}: must be > 0 and < 1 (the share of each class's rows held out)")
    if args.task == "classify":
        if not args.data:
            raise UsageError("--task classify needs --data: the seed lesson is a regression")
        if args.outputs != 1:
            raise UsageError(f"--outputs {args.outputs} does not apply to --task classify: a classifier reads one "
                             "label column, and has one output per class")
        if args.trainer == "tape":
            raise UsageError("--trainer tape trains the lesson's single neuron, a regression: not --task classify")
    if args.task == "regress" and args.holdout is not None:
        raise UsageError("--holdout applies to classifiers: a regression trains on every row")
    hidden, _ = hidden_layers(args)
    if args.activation != "linear" and not hidden:
        raise UsageError(f"--activation {args.activation} applies to hidden layers, and the neuron has none "
                         "(add --hidden or --model two-layer)")


def validate_task(args: argparse.Namespace, dataset: data_stage.Dataset) -> None:
    """The arguments against the task the data turned out to be, when it was guessed."""
    if dataset.classify and args.trainer == "tape":
        raise UsageError(f"--trainer tape trains the lesson's single neuron, a regression, and {dataset.source} is a "
                         f"classification ({dataset.task_reason})")
    if not dataset.classify and args.holdout is not None:
        raise UsageError(f"--holdout applies to classifiers, and {dataset.source} is a regression "
                         f"({dataset.task_reason}; --task classify for integer class labels)")
