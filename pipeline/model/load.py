"""The model files a build is given instead of training one: a saved Keras model to convert, an int8
.tflite to deploy as it is, and the float model the int8 one is judged against."""
from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

from pipeline.capture import fd_output
from pipeline.errors import BadInput
from pipeline.int8 import tflite_model
from pipeline.model.check import FloatModel
from pipeline.model.data import regular_file
from pipeline.int8.tflite_model import TfliteModel

FULL_INT8_HOW = ("make a full-int8 model: TFLiteConverter with optimizations [tf.lite.Optimize.DEFAULT], a "
                 "representative_dataset, target_spec.supported_ops [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] and "
                 "inference_input_type = inference_output_type = tf.int8; or pass the float model as --keras "
                 "FILE.keras and this build converts it")
LAYER_NAME = re.compile(r"tinyml_layer(\d+)x")
"""Layers are renamed to this before conversion, so each op's tensor names say which layer made it."""


class ModelFileError(BadInput, ValueError):
    """A model file this build cannot deploy, and why."""


@dataclass(frozen=True)
class KerasModel:
    model: keras.Model
    source: str
    input_shape: tuple[int, ...]
    """One row's shape, without the batch: (119, 6) for an IMU window."""
    layer_names: tuple[str, ...]
    """The original names of the renamed layers, by their index in LAYER_NAME."""

    @property
    def width(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def outputs(self) -> int:
        return int(np.prod(self.model.outputs[0].shape[1:]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return keras_outputs(self.model, self.input_shape, x)

    def layer_of(self, tensor_name: str) -> str:
        """The Keras layer an op's output tensor came from, or '' when its name does not say."""
        found = LAYER_NAME.search(tensor_name)
        if found is not None and int(found.group(1)) < len(self.layer_names):
            return self.layer_names[int(found.group(1))]
        kept = [layer.name for layer in self.model.layers if not LAYER_NAME.fullmatch(layer.name)]
        parts = set(re.split(r"[/;\"\s:@]", tensor_name))
        exact = next((name for name in kept if name in parts), "")
        return exact or next((name for name in kept for part in parts if re.fullmatch(re.escape(name) + r"_\d+", part)), "")

    def conversion_error(self, exc: Exception) -> ModelFileError:
        """What the converter refused, by layer and op, from its MLIR locations ('tf.Cumprod' at .../layer/...)."""
        message = str(exc)
        op = re.search(r"'(tf\.[A-Za-z0-9_]+|tfl\.[A-Za-z0-9_]+)' op", message)
        layer = self.layer_of(message)
        what = f"layer {layer}" if layer else "a layer"
        reason = next((line.strip() for line in message.splitlines() if "error:" in line),
                      message.splitlines()[0] if message else "")
        reason = re.sub(r"^.*error: (loc\(.*?\)\)\)*: )?", "", reason)
        return ModelFileError(f"{self.source}: the int8 converter cannot take {what}"
                              f"{f' (op {op.group(1)})' if op else ''}: {reason[:240]}")


WANTED = {"--keras": "a Keras 3 .keras file", "--tflite": "an int8 .tflite file",
          "--float-model": "a .keras or float .tflite file"}
"""What each model argument asks for, said when a path is not a file at all."""


def _exists(path: Path, flag: str) -> None:
    """A readable regular file, judged as --data is (a directory, FIFO or /dev/zero is never opened)."""
    where = f"{flag} {path}"
    regular_file(path, where, WANTED.get(flag, "a model file"), ModelFileError)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ModelFileError(f"{where}: cannot read: {exc.strerror}") from None


def load_keras(path: Path, flag: str = "--keras") -> KerasModel:
    """A saved Keras 3 model with one input and one output, its layers renamed for the messages."""
    _exists(path, flag)
    if path.suffix != ".keras":
        raise ModelFileError(f"{flag} {path}: expected a Keras 3 .keras file (model.save('model.keras'))")
    _keras_archive(path, flag)
    try:
        with warnings.catch_warnings(), fd_output(2):
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many kinds; each means "not a model this build can read"
        raise ModelFileError(f"{flag} {path}: Keras cannot load it: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return from_model(model, f"{flag} {path}")


def _keras_archive(path: Path, flag: str) -> None:
    """A .keras file is a zip archive with config.json in it; Keras itself says "File not found"
    of any file that is not a zip, so that is judged here first and said as it is."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        raise ModelFileError(f"{flag} {path}: not a Keras 3 .keras file: not a zip archive "
                            "(model.save('model.keras') writes one)") from None
    if "config.json" not in names:
        raise ModelFileError(f"{flag} {path}: not a Keras 3 .keras file: its zip archive holds no config.json "
                            "(model.save('model.keras') writes one)")


def from_model(model: keras.Model, source: str) -> KerasModel:
    """A Keras model with one input and one output, its layers renamed so each op names its layer."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(f"{source}: the model has {len(model.inputs)} inputs and {len(model.outputs)} "
                            "outputs; the device takes one input tensor and gives one output tensor")
    shape = tuple(model.inputs[0].shape[1:])
    if not shape or any(d is None for d in shape):
        raise ModelFileError(f"{source}: input shape {tuple(model.inputs[0].shape)} has a dimension of no fixed "
                            "size besides the batch; the device needs every input's place fixed")
    names: list[str] = []

    def rename(layer: keras.layers.Layer) -> keras.layers.Layer:
        """A copy under a tracing name; a layer that cannot be rebuilt from its config (a Python
        lambda) is kept as it is, and found by its own name."""
        try:
            clone = layer.__class__.from_config({**layer.get_config(), "name": f"tinyml_layer{len(names)}x"})
        except Exception:
            return layer
        names.append(layer.name)
        return clone

    try:
        renamed = keras.models.clone_model(model, clone_function=rename)
        renamed.set_weights(model.get_weights())
    except Exception:  # a model clone_model cannot take: its tensors keep their own names
        renamed, names = model, []
    return KerasModel(renamed, source, tuple(int(d) for d in shape), tuple(names))


def keras_outputs(model: keras.Model, shape: tuple[int, ...], x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(len(x), *shape)
    rows = [np.asarray(model(x[k:k + chunk], training=False), dtype=np.float32).reshape(len(x[k:k + chunk]), -1)
            for k in range(0, len(x), chunk)]
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)


@dataclass(frozen=True)
class Int8File:
    tflite: bytes
    model: TfliteModel
    source: str


def read_tflite(path: Path, flag: str = "--tflite") -> Int8File:
    """A full-int8 flatbuffer file, its bytes as they are (int8_file)."""
    _exists(path, flag)
    return int8_file(path.read_bytes(), f"{flag} {path}", str(path))


def int8_file(data: bytes, where: str, source: str) -> Int8File:
    """Full-int8 flatbuffer bytes (a file's, or handed to pipeline.api); a float or dynamic-range model
    is refused, saying how to make a full-int8 one. where: what the messages name it by."""
    model = _parse(data, where)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(f"{where}: the model has {len(model.inputs)} inputs and {len(model.outputs)} "
                            "outputs; the device takes one input tensor and gives one output tensor")
    for role, tensor in (("input", model.input), ("output", model.output)):
        if tensor.dtype != "INT8":
            kind, how = model_kind(model)
            raise ModelFileError(f"{where}: its {role} tensor '{tensor.name}' is {tensor.dtype}, so it is {kind}; "
                                f"the device runs full-int8 models (int8 input, activations and output) only: {how}")
        if tensor.scales.size != 1:
            raise ModelFileError(f"{where}: its {role} tensor '{tensor.name}' has {tensor.scales.size} scales; "
                                "the device needs one (per-tensor) scale on input and output")
    return Int8File(bytes(data), model, source)


_CONVERTER_ENDS = ("QUANTIZE", "DEQUANTIZE")
"""The ops a converter puts at a model's ends to change its input's and output's type."""
INT8_IO_HOW = ("convert it again with inference_input_type = inference_output_type = tf.int8 (the converter then "
               "leaves out the QUANTIZE and DEQUANTIZE ops at its ends); or pass the float model as --keras FILE.keras "
               "and this build converts it")
INT16_HOW = ("convert it with target_spec.supported_ops [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] in place of "
             "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, and inference_input_type = "
             "inference_output_type = tf.int8; or pass the float model as --keras FILE.keras and this build converts it")
_IO_TYPES = {"FLOAT32": "float", "UINT8": "uint8", "INT16": "int16", "FLOAT16": "float16", "INT8": "int8"}


def model_kind(model: TfliteModel) -> tuple[str, str]:
    """What a model whose input or output is not int8 is, and how to make the full-int8 kind instead.

    Judged by its activations, the tensors its ops compute (not the QUANTIZE and DEQUANTIZE at its ends,
    which only change the type), and by its weights: so a uint8 or 16x8 model, or an int8 one behind a
    float or uint8 interface, is called what it is, not a dynamic-range one."""
    computed = {model.tensors[t].dtype for op in model.operators if op.op not in _CONVERTER_ENDS
                for t in op.outputs if 0 <= t < len(model.tensors)}
    constants = {t.dtype for t in model.tensors if t.data is not None or t.dtype == "FLOAT16"}
    given, taken = (_IO_TYPES.get(t.dtype, t.dtype) for t in (model.input, model.output))
    ends = (f"{given} input and output" if given == taken else f"{given} input and {taken} output"
            if "INT8" not in (model.input.dtype, model.output.dtype)
            else f"{given} input" if model.output.dtype == "INT8" else f"{taken} output")
    if "INT16" in computed:
        return "a 16x8 model (int16 activations, int8 weights)", INT16_HOW
    if "UINT8" in computed:
        return "a uint8 model (uint8 activations: TensorFlow 1's quantization)", FULL_INT8_HOW
    if "INT8" in computed:
        return f"an int8 model with {ends} (int8 inside, converted at its ends)", INT8_IO_HOW
    if "INT8" in constants:
        return "a dynamic-range model (int8 weights, float activations)", FULL_INT8_HOW
    if "FLOAT16" in constants:
        return "a float16 model (float16 weights, float activations)", FULL_INT8_HOW
    return "a float model", FULL_INT8_HOW


def _parse(data: bytes, where: str) -> TfliteModel:
    if bytes(data[4:8]) != b"TFL3":
        raise ModelFileError(f"{where}: not a TFLite flatbuffer (no TFL3 identifier at byte 4)")
    try:
        return tflite_model.read(bytes(data))
    except tflite_model.ModelFormatError as exc:
        raise ModelFileError(f"{where}: {exc}") from None


def float_model(path: Path, width: int, flag: str = "--float-model") -> tuple[FloatModel, str]:
    """The float model an int8 .tflite came from: a .keras or a float .tflite, and how it is named."""
    _exists(path, flag)
    if path.suffix == ".keras":
        given = load_keras(path, flag)
        if given.width != width:
            raise ModelFileError(f"{flag} {path}: it takes {given.width} inputs, the int8 model {width}")
        return given, f"Keras model {path.name}"
    if path.suffix != ".tflite":
        raise ModelFileError(f"{flag} {path}: expected FILE.keras or a float FILE.tflite")
    data = path.read_bytes()
    parsed = _parse(data, f"{flag} {path}")
    if parsed.input.dtype != "FLOAT32" or parsed.output.dtype != "FLOAT32":
        raise ModelFileError(f"{flag} {path}: its input and output are {parsed.input.dtype} and "
                            f"{parsed.output.dtype}; the float model's must be FLOAT32")
    shape = parsed.input.shape
    if int(np.prod(shape[1:])) != width:
        raise ModelFileError(f"{flag} {path}: it takes {int(np.prod(shape[1:]))} inputs, the int8 model {width}")
    with warnings.catch_warnings(), fd_output(2):
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=data,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        rows = []
        for row in np.asarray(x, dtype=np.float32):
            interpreter.set_tensor(index, row.reshape(shape))
            interpreter.invoke()
            rows.append(np.array(interpreter.get_tensor(out_index), dtype=np.float32).reshape(-1))
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    return run, f"float TFLite model {path.name}"
