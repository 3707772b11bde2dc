"""The pipeline from Python (a notebook, a script): a Keras model object or .tflite bytes and arrays of
data in, the int8 model, the check's figures, the files written and the footprint out; then the
device or an emulation asked, or proven bit for bit. The stages are the build's own
(`pipeline.build.build`, as `python -m pipeline.build --keras/--tflite` runs them), so a notebook and
the command line get the same model, the same check and the same files.

    import keras, numpy as np
    from pipeline import api
    x = np.linspace(-1, 4, 200, dtype=np.float32).reshape(-1, 1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse"); model.fit(x, 2 * x - 1, epochs=200, verbose=0)
    built = api.deploy(model, x, out="build/notebook/model")
    built.check["errors"]["max_lsb"], built.files        # the figures, what was written
    built.verify(emulate="native").ok                     # the device computes what Python computes

`deploy` imports TensorFlow (it converts); `Deployment.verify`, `Deployment.predict` and `device_of`
do not: the device side runs on numpy and pyserial alone.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from pipeline.errors import BadInput


class ApiError(BadInput, ValueError):
    """An argument of the API is not what it takes."""


@dataclass
class Deployment:
    """A deployed model: its folder (what the firmware compiles), its report, and the ways to ask it."""

    out: Path
    report_dir: Path
    report: dict[str, Any]
    """What report.json holds: the model, the check, the footprint."""
    files: list[Path] = field(default_factory=list)

    @property
    def tflite(self) -> bytes:
        """The int8 flatbuffer the device runs, byte for byte."""
        return (self.out / "model.tflite").read_bytes()

    @property
    def check(self) -> dict[str, Any]:
        """The check's figures: TFLM against the integer reference, float against int8."""
        return self.report["check"]

    @property
    def footprint(self) -> dict[str, Any] | None:
        """Flash, RAM and instructions on the Cortex-M4 per engine (None unless asked for)."""
        return self.report.get("footprint")

    def verify(self, emulate: str | None = "native", port: str | None = None, tflm_root: str | Path | None = None):
        """`python -m pipeline.verify`: the device (on port) or an emulation ("native", "qemu", built from
        this folder) against the oracle, bit for bit. Returns the VerifyResult (`.ok`, `.checks`)."""
        from pipeline.device import deployed, verify
        model = deployed.load(self.out)
        with device_of(self.out, emulate, port, tflm_root) as device:
            return verify.verify(device, model)

    def predict(self, rows: Sequence[Sequence[float]] | np.ndarray, emulate: str | None = "native",
                port: str | None = None, tflm_root: str | Path | None = None) -> np.ndarray:
        """The device's float answers to rows of values, [rows, outputs], as a person would ask them."""
        rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        with device_of(self.out, emulate, port, tflm_root) as device:
            return np.array([device.predict(row.tolist()).values for row in rows])


@contextlib.contextmanager
def device_of(model_dir: str | Path, emulate: str | None = "native", port: str | None = None,
              tflm_root: str | Path | None = None) -> Iterator[Any]:
    """An open Device for the model in model_dir: the board on port, or an emulation of that folder's
    firmware; waits for each answer as the command line does (longer for a model of many MACs)."""
    from pipeline.device import connect
    from pipeline.device.serial_client import Device
    from pipeline.emulation.emulate import emulated_device
    if (emulate is None) == (port is None):
        raise ApiError("give one of emulate ('native' or 'qemu') and port")
    model_dir = Path(model_dir)
    timing = argparse.Namespace(timeout=None)
    tflite = (model_dir / "model.tflite").read_bytes() if (model_dir / "model.tflite").is_file() else None
    timeout = connect.answer_timeout(timing, tflite)
    with contextlib.ExitStack() as stack:
        if emulate is not None:
            port = stack.enter_context(emulated_device(emulate, model_dir=model_dir,
                                                       tflm_root=Path(tflm_root) if tflm_root else None))
        yield stack.enter_context(Device(port, timeout=timeout))


def deploy(model: Any, data: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None, *,
           out: str | Path = "build/model", report_dir: str | Path | None = None, engine: str = "tflm",
           labels: Sequence[str] | None = None, input_range: tuple[float, float] | None = None,
           float_model: Any = None, tolerance_lsb: float | None = None, footprint: bool = False,
           quiet: bool = True) -> Deployment:
    """Converts (a Keras model) or takes (.tflite bytes, or a path to either) a model, checks it
    against TFLM and the integer reference and writes the firmware's model folder and the report, as
    `python -m pipeline.build --keras/--tflite` does.

    data: the representative rows, [rows, inputs...] (or (x, y): a target or label per row, which the
    check ignores); they calibrate a Keras model and judge both. float_model: the float model of
    .tflite bytes (a Keras model object or a path), for the float-vs-int8 figures. Raises the build's
    errors (one-line messages) where the command line would exit nonzero."""
    from pipeline import build
    out = Path(out)
    report_dir = Path(report_dir) if report_dir is not None else out.parent / "report"
    with tempfile.TemporaryDirectory(prefix="tinyml-api-") as scratch:
        where = Path(scratch)
        argv = ["--out", str(out), "--report-dir", str(report_dir), "--engine", engine]
        argv += list(_model_flag(model, where, "model"))
        if float_model is not None:
            argv += ["--float-model", _model_flag(float_model, where, "float")[1]]
        if data is not None:
            argv += ["--data", str(_csv(data, where / "data.csv"))]
        if labels is not None:
            argv += ["--labels", ",".join(labels)]
        if input_range is not None:
            argv += ["--input-range", repr(float(input_range[0])), repr(float(input_range[1]))]
        if tolerance_lsb is not None:
            argv += ["--tolerance-lsb", repr(float(tolerance_lsb))]
        if not footprint:
            argv.append("--no-footprint")
        args = build.parse_args(argv)
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            report = build.build(args, (lambda *a, **k: None) if quiet else print)
    files = sorted(p for folder in (out, report_dir) for p in folder.iterdir() if p.name in build.BUILD_FILES)
    return Deployment(out, report_dir, report, files)


def _model_flag(model: Any, where: Path, stem: str) -> tuple[str, str]:
    """The build's flag and file for a model: .tflite bytes or a Keras object saved to where, or a path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        path = where / f"{stem}.tflite"
        if not path.exists():
            path.write_bytes(bytes(model))
        return "--tflite", str(path)
    if isinstance(model, (str, Path)):
        path = Path(model)
        return ("--tflite" if path.suffix == ".tflite" else "--keras"), str(path)
    if hasattr(model, "save") and hasattr(model, "inputs"):
        path = where / f"{stem}.keras"
        if not path.exists():
            model.save(path)
        return "--keras", str(path)
    raise ApiError(f"model: a Keras model, .tflite bytes or a path to either, not {type(model).__name__}")


def _csv(data: np.ndarray | tuple[np.ndarray, np.ndarray], path: Path) -> Path:
    """The rows as the build's CSV: each row's values flattened (an IMU window of 119 x 6 is 714
    columns), then its target(s) or label when given."""
    x, y = data if isinstance(data, tuple) else (data, None)
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    columns = [[repr(float(v)) for v in row] for row in x]
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise ApiError(f"data: {len(x)} rows of inputs but {len(y)} targets")
        targets = y.reshape(len(y), -1)
        for row, target in zip(columns, targets):
            row.extend(str(t) if targets.dtype.kind in "OUS" else repr(float(t)) for t in target)
    path.write_text("".join(",".join(row) + "\n" for row in columns), encoding="utf-8")
    return path
