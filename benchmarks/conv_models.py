"""Convolution models shaped like the field's, on the AOT engine against TFLM, on the Cortex-M4 (QEMU -icount).

Builds each model with Keras (seeded weights, not trained: the instruction counts depend on the
shapes, not on the values), converts and deploys it with `python -m pipeline.build --engine aot`
into a scratch folder under build/, measures it with pipeline.footprint (both engines when a TFLM
tree is given: --tflm-root, else $TFLM_ROOT) and prints one row per model:

    model | MACs | AOT instr | /MAC | TFLM instr | /MAC | TFLM/AOT | AOT peak B | TFLM arena B | ratio
          | AOT flash B | TFLM flash B

"AOT peak" is the memory plan's arena (every tensor between the model's input and output, and the
convolutions' scratch); "TFLM arena" the arena TFLM reports on the 32-bit target (its tensors and
CMSIS-NN's scratch buffers). Flash is the inference part of each image: the AOT engine with its
tables, TFLM's library and glue with the flatbuffer.

    python benchmarks/conv_models.py [--tflm-root DIR] [--models ds-cnn,...] [--markdown] [--rebuild]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.footprint import measurement as footprint  # noqa: E402
from table import count, show  # noqa: E402

WORK = ROOT / "build" / "bench-conv"


def ds_cnn(keras: Any) -> Any:
    """MLPerf Tiny's keyword spotter (DS-CNN small): a 10x4 convolution of 64 channels, stride 2, on a
    49x10 spectrogram, four depthwise-separable blocks of 64, average pooling, 12 classes."""
    layers = keras.layers
    x = keras.Input((49, 10, 1))
    y = layers.Conv2D(64, (10, 4), strides=2, padding="same", activation="relu")(x)
    for _ in range(4):
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(y)
        y = layers.Conv2D(64, 1, activation="relu")(y)
    y = layers.AveragePooling2D((25, 5))(y)
    return keras.Model(x, layers.Dense(12, activation="softmax")(layers.Flatten()(y)))


def mobilenet_96(keras: Any) -> Any:
    """A MobileNetV1-style wake-word net (visual wake words' shape, width 0.25) on a 96x96 RGB image:
    a 3x3 stride-2 stem of 8, depthwise-separable blocks with ReLU6, global average pooling, 2 logits
    (no softmax: the untrained net's logits span too small a scale for SOFTMAX's beta)."""
    layers = keras.layers
    x = keras.Input((96, 96, 3))
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    for channels, stride in ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
                             (256, 2), (256, 1)):
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(y)
        y = layers.Conv2D(channels, 1, activation="relu6")(y)
    y = layers.GlobalAveragePooling2D()(y)
    return keras.Model(x, layers.Dense(2)(y))


def resnet_8(keras: Any) -> Any:
    """MLPerf Tiny's ResNet-8 on a 32x32 RGB image: a 3x3 stem of 16, three stages of two 3x3
    convolutions (16, 32, 64 channels; the last two strided, with a 1x1 strided shortcut) and their
    ADD, average pooling, 10 classes."""
    layers = keras.layers
    x = keras.Input((32, 32, 3))
    y = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    for channels, stride in ((16, 1), (32, 2), (64, 2)):
        z = layers.Conv2D(channels, 3, strides=stride, padding="same", activation="relu")(y)
        z = layers.Conv2D(channels, 3, padding="same")(z)
        skip = y if stride == 1 else layers.Conv2D(channels, 1, strides=stride)(y)
        y = layers.Activation("relu")(layers.Add()([z, skip]))
    y = layers.AveragePooling2D(8)(y)
    return keras.Model(x, layers.Dense(10, activation="softmax")(layers.Flatten()(y)))


def autoencoder(keras: Any) -> Any:
    """MLPerf Tiny's anomaly detector's shape: 640 -> 128 -> 8 -> 128 -> 640 (dense only: the FC kernel)."""
    layers = keras.layers
    x = keras.Input((640,))
    y = layers.Dense(128, activation="relu")(x)
    y = layers.Dense(8, activation="relu")(y)
    y = layers.Dense(128, activation="relu")(y)
    return keras.Model(x, layers.Dense(640)(y))


def conv1d_gesture(keras: Any) -> Any:
    """A 119-sample x 6-axis IMU window: Conv1D, max pooling, Conv1D, global average pooling, 5 gestures."""
    layers = keras.layers
    x = keras.Input((119, 6))
    y = layers.Conv1D(16, 5, activation="relu")(x)
    y = layers.MaxPooling1D(2)(y)
    y = layers.Conv1D(16, 3, activation="relu")(y)
    y = layers.GlobalAveragePooling1D()(y)
    return keras.Model(x, layers.Dense(5, activation="softmax")(y))


MODELS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ds-cnn": ("DS-CNN keyword spotter (49x10x1)", ds_cnn),
    "mobilenet-96": ("MobileNet 0.25 wake word (96x96x3)", mobilenet_96),
    "resnet-8": ("ResNet-8 (32x32x3)", resnet_8),
    "autoencoder": ("autoencoder (640-128-8-128-640)", autoencoder),
    "conv1d-gesture": ("Conv1D gesture (119x6)", conv1d_gesture),
}


def build_model(name: str, work: Path, rebuild: bool) -> Path:
    """The model saved with seeded weights, 64 seeded rows of inputs as its data, built for the AOT
    engine; kept in `work` (a later run reuses it unless --rebuild, or its tables' layout is not the
    engine's any more)."""
    from pipeline.emit import aot
    folder = work / name
    model_dir = folder / "model"
    tables = model_dir / "model_aot.h"
    current = tables.is_file() and f"#define MODEL_AOT_FORMAT {aot.FORMAT} " in tables.read_text()
    if current and not rebuild:
        return model_dir
    import keras
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(sorted(MODELS).index(name))
    model = MODELS[name][1](keras)
    model.save(folder / f"{name}.keras")
    width = int(np.prod(model.inputs[0].shape[1:]))
    rows = np.random.default_rng(1).normal(0, 1, size=(64, width))
    np.savetxt(folder / "data.csv", rows, delimiter=",", fmt="%.3f")
    command = [sys.executable, "-m", "pipeline.build", "-q", "--no-footprint", "--engine", "aot",
               "--keras", str(folder / f"{name}.keras"), "--data", str(folder / "data.csv"),
               "--tolerance-lsb", "1e6", "--out", str(model_dir), "--report-dir", str(folder / "report")]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"building {name} failed: {run.stderr.strip() or run.stdout.strip()}")
    return model_dir


def row(label: str, model_dir: Path, results: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    aot, tflm = results["aot"], results.get("tflm", {})
    if "instructions_per_inference" not in aot:
        raise SystemExit(f"{label}: the AOT engine was not measured: {aot.get('skipped', aot)}")
    macs = footprint.macs(model_dir)
    a = aot["instructions_per_inference"]
    t = tflm.get("instructions_per_inference")
    peak, arena = aot["arena_bytes"], tflm.get("arena_bytes")
    return (label, count(macs), count(a), f"{a / macs:.2f}", count(t), f"{t / macs:.2f}" if t else "-",
            f"{t / a:.2f}x" if t else "-", count(peak), count(arena), f"{peak / arena:.3f}" if arena else "-",
            count(aot["flash_bytes"]), count(tflm.get("flash_bytes")))


HEADER = ("model", "MACs", "AOT instr", "AOT/MAC", "TFLM instr", "TFLM/MAC", "TFLM/AOT", "AOT peak B",
          "TFLM arena B", "peak/arena", "AOT flash B", "TFLM flash B")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-root", type=Path, default=os.environ.get("TFLM_ROOT") or None,
                        help="TFLM library tree (default $TFLM_ROOT): measure TFLM on the same models")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--work", type=Path, default=WORK, help=f"folder for the built models (default {WORK.relative_to(ROOT)})")
    parser.add_argument("--rebuild", action="store_true", help="build the models again even where built")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    started = time.monotonic()
    rows = []
    for name in names:
        model_dir = build_model(name, args.work, args.rebuild)
        results = footprint.measure(model_dir, args.tflm_root)
        rows.append(row(MODELS[name][0], model_dir, results))
        print(f"measured {name} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    show(HEADER, rows, args.markdown)
    if not args.tflm_root:
        print("TFLM not measured: give --tflm-root or TFLM_ROOT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
