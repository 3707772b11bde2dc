"""Instructions per inference of the AOT engine against TFLM, on the Cortex-M4 (QEMU -icount).

Builds a few models with `python -m pipeline.build` into a scratch folder, measures each with
pipeline.footprint (the same images, the same `bench` method) and prints one row per model:

    model | MACs | AOT instr | AOT instr/MAC | TFLM instr | TFLM/AOT | AOT flash B | AOT stack B

The models: the two seed models, a 1-16-16-1 relu sine (the README's example), a 3-class
classifier (3 inputs, 8 relu, softmax) and a wide classifier (714 inputs, 50 relu, 15 relu,
5 classes), the last two trained on seeded random CSV data. TFLM is measured when a TFLM
library tree is given (--tflm-root, else $TFLM_ROOT; see firmware/tflm.cmake): its first build
takes about half an hour on two cores, later ones only recompile the model. Without one the
TFLM column holds the figures pipeline.footprint records for the pinned tree (marked *), where
it has them.

    python benchmarks/aot_instructions.py [--tflm-root DIR] [--models neuron,two-layer,...] [--markdown]
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.footprint import measurement as footprint  # noqa: E402
from table import count, show  # noqa: E402


def _sine_csv(path: Path) -> None:
    xs = np.linspace(-math.pi, math.pi, 200)
    ys = np.sin(xs)
    path.write_text("x,y\n" + "".join(f"{x:.6f},{y:.6f}\n" for x, y in zip(xs, ys)))


def _classes_csv(path: Path, inputs: int, classes: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, size=(classes, inputs))
    labels = np.arange(rows) % classes
    xs = centres[labels] + rng.normal(0.0, 1.0, size=(rows, inputs))
    with open(path, "w", encoding="ascii") as out:
        for x, label in zip(xs, labels):
            out.write(",".join(f"{v:.4f}" for v in x) + f",c{label}\n")


MODELS = {
    "neuron": ("neuron (1)", None, []),
    "two-layer": ("two-layer (1-2-1)", None, ["--model", "two-layer"]),
    "sine-16x16": ("16x16 relu sine (1-16-16-1)", _sine_csv,
                   ["--hidden", "16,16", "--activation", "relu", "--optimizer", "adam", "--lr", "0.02",
                    "--epochs", "800"]),
    "classifier": ("3-class classifier (3-8-3 softmax)", lambda p: _classes_csv(p, 3, 3, 300, 1),
                   ["--hidden", "8", "--activation", "relu", "--optimizer", "adam", "--lr", "0.02", "--epochs", "200"]),
    "wide": ("wide (714-50-15-5 softmax)", lambda p: _classes_csv(p, 714, 5, 200, 2),
             ["--hidden", "50,15", "--activation", "relu", "--optimizer", "adam", "--lr", "0.001",
              "--epochs", "30", "--tolerance-lsb", "256"]),
}
"""name -> (label, writes the training CSV or None for the seed data, build arguments)."""


def build_model(name: str, work: Path) -> Path:
    label, make_csv, arguments = MODELS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pipeline.build", "-q", "--no-footprint", "--out", str(folder / "model"),
               "--report-dir", str(folder / "report"), *arguments]
    if make_csv is not None:
        make_csv(folder / "data.csv")
        command += ["--data", str(folder / "data.csv")]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"building {name} failed: {run.stderr.strip() or run.stdout.strip()}")
    return folder / "model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-root", type=Path, default=os.environ.get("TFLM_ROOT") or None,
                        help="TFLM library tree (default $TFLM_ROOT): measure TFLM on the same models")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--work", type=Path, help="folder for the built models (default: a temporary one)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    started = time.monotonic()
    header = ("model", "MACs", "AOT instr", "AOT instr/MAC", "TFLM instr", "TFLM/AOT", "AOT flash B",
              "AOT stack B")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        for name in names:
            model_dir = build_model(name, work)
            results = footprint.measure(model_dir, args.tflm_root)
            aot = results["aot"]
            macs = footprint.macs(model_dir)
            if "tflm" in results:
                tflm, mark = results["tflm"]["instructions_per_inference"], ""
            else:
                tflm, mark = footprint.TFLM_REFERENCE_INSTRUCTIONS.get(aot["model"]), "*"
            aot_instr = aot["instructions_per_inference"]
            rows.append((MODELS[name][0], count(macs), count(aot_instr), f"{aot_instr / macs:.2f}",
                         count(tflm) + (mark if tflm is not None else ""),
                         f"{tflm / aot_instr:.2f}x" if tflm else "-", count(aot["flash_bytes"]),
                         count(aot["stack_bytes"])))
            print(f"measured {name} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    show(header, rows, args.markdown)
    if not args.tflm_root:
        print(f"* not measured here: {footprint.TFLM_REFERENCE_SOURCE} (give --tflm-root or TFLM_ROOT to measure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
