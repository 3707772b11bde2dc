"""The pipeline from Python (a notebook, a script): a Keras model object or .tflite bytes and arrays of
data in, the int8 model, the check's figures, the files written and the footprint out; then the
device or an emulation asked, or proven bit for bit. The stages are the build's own
(`pipeline.stages.build`), and `python -m pipeline.build --keras/--tflite` is a layer over `deploy`: it
reads the files into the objects a notebook hands over, so both get the same model, the same check
and the same files.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

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
           float_model: Any = None, tolerance_lsb: float | None = None, per_channel: bool = False,
           footprint: bool = False, quiet: bool = True, say: Callable[..., Any] | None = None) -> Deployment:
    """Converts (a Keras model) or takes (.tflite bytes, or a path to either) a model, checks it
    against TFLM and the integer reference and writes the firmware's model folder and the report:
    the build's stages, which `python -m pipeline.build --keras/--tflite` reaches through here too.

    data: the representative rows, [rows, inputs...] (or (x, y): a target or label per row, which the
    check ignores); they calibrate a Keras model and judge both. float_model: the float model of
    .tflite bytes (a Keras model object or a path), for the float-vs-int8 figures. say: where the
    build's lines go (quiet: nowhere, and nothing printed). Raises the build's errors (one-line
    messages) where the command line would exit nonzero."""
    from pipeline import build_args, stages
    out = Path(out)
    report_dir = Path(report_dir) if report_dir is not None else out.parent / "report"
    argv = ["--out", str(out), "--report-dir", str(report_dir), "--engine", engine]
    if labels is not None:
        argv += ["--labels", ",".join(labels)]
    if input_range is not None:
        argv += ["--input-range", repr(float(input_range[0])), repr(float(input_range[1]))]
    if tolerance_lsb is not None:
        argv += ["--tolerance-lsb", repr(float(tolerance_lsb))]
    argv += ["--per-channel"] * bool(per_channel) + ["--footprint" if footprint else "--no-footprint"]
    args = build_args.parse_args(argv)
    from pipeline.model import given
    supplied = model if isinstance(model, given.Given) else _given(model, data, float_model)
    if isinstance(model, given.Given) and (data is not None or float_model is not None):
        raise ApiError("data and float_model come with the model already read (stages.read_given)")
    # the given model's flags, for the argument checks the command line's would pass
    args.keras, args.tflite = (supplied.source, None) if supplied.keras is not None else (None, supplied.source)
    args.float_model = supplied.float_model[1] if supplied.float_model else None
    if say is None and quiet:
        with contextlib.redirect_stdout(io.StringIO()):
            report = stages.build(args, lambda *a, **k: None, supplied)
    else:
        report = stages.build(args, say or print, supplied)
    files = sorted(p for folder in (out, report_dir) for p in folder.iterdir() if p.name in stages.BUILD_FILES)
    return Deployment(out, report_dir, report, files)


def _given(model: Any, data: Any, float_model: Any) -> Any:
    """The given.Given of Python objects: a Keras model, .tflite bytes, or a path to either; rows as an
    array (or (x, y)); the float model of .tflite bytes as a Keras model or a path."""
    from pipeline.model import given, load
    if isinstance(model, (bytes, bytearray, memoryview)):
        supplied = given.Given("model (.tflite bytes)", "model", "model (.tflite bytes)",
                               int8=load.int8_file(bytes(model), "model (.tflite bytes)", "model (.tflite bytes)"))
    elif isinstance(model, (str, Path)):
        path = Path(model)
        supplied = (given.Given(f"model {path}", path.stem, str(path), int8=load.read_tflite(path, "model"))
                    if path.suffix == ".tflite" else
                    given.Given(f"model {path}", path.stem, str(path), keras=load.load_keras(path, "model")))
    elif hasattr(model, "save") and hasattr(model, "inputs"):
        supplied = given.Given("model (a Keras model)", "model", "model (a Keras model)",
                               keras=load.from_model(model, "model (a Keras model)"))
    else:
        raise ApiError(f"model: a Keras model, .tflite bytes or a path to either, not {type(model).__name__}")
    if data is not None:
        supplied.data = given.rows_of(data[0] if isinstance(data, tuple) else data, supplied.width, "data")
    if float_model is not None:
        if supplied.int8 is None:
            raise ApiError("float_model goes with .tflite bytes or a .tflite path (a Keras model is its own float model)")
        if isinstance(float_model, (str, Path)):
            supplied.float_model = load.float_model(Path(float_model), supplied.width, "float_model")
        else:
            keras_float = load.from_model(float_model, "float_model (a Keras model)")
            if keras_float.width != supplied.width:
                raise ApiError(f"float_model: it takes {keras_float.width} inputs, the int8 model {supplied.width}")
            supplied.float_model = (keras_float, "Keras model (float_model)")
    return supplied
