"""Reads an int8 TFLite flatbuffer into plain numpy structures (no interpreter).

The schema bindings are the `tflite` package's (generated from TFLite's schema, over
`flatbuffers`): reading a model needs neither TensorFlow nor its import time, so the
device tools run where no TensorFlow wheel exists.
"""
from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tflite

from pipeline.int8.tflite_verify import ModelFormatError, verify

__all__ = ["ModelFormatError", "Operator", "Tensor", "TfliteModel", "read"]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray
    zero_points: np.ndarray
    data: np.ndarray | None

    @property
    def per_channel(self) -> bool:
        return self.scales.size > 1


@dataclass(frozen=True)
class Operator:
    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    activation: str
    beta: float = 1.0
    """SOFTMAX's beta (its SoftmaxOptions): the kernel's multiplier depends on it."""
    options: dict[str, Any] = field(default_factory=dict)
    """The builtin options table's fields in snake case: {"padding": "SAME", "stride_w": 2, ...};
    vectors as tuples, enums by name where the schema names them (padding)."""


@dataclass(frozen=True)
class TfliteModel:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    sha256: str = field(default="")
    input_center: float = 0.0
    """Not in the flatbuffer: the float32 value the device subtracts from every input before quantizing
    it (a trained model whose inputs lie far from 0, trained on x - center); 0: none."""

    @property
    def ops(self) -> list[str]:
        """Distinct builtin ops in first-use order: what TFLM's resolver must hold."""
        return list(dict.fromkeys(o.op for o in self.operators))

    @property
    def input(self) -> Tensor:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]


_DTYPES = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32, "INT16": np.int16, "UINT8": np.uint8, "INT64": np.int64}


def _names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


_TYPE_NAMES = _names(tflite.TensorType)
_OP_NAMES = _names(tflite.BuiltinOperator)
_ACTIVATION_NAMES = _names(tflite.ActivationFunctionType)
_OPTION_NAMES = _names(tflite.BuiltinOptions)


def _activation(op: tflite.Operator) -> str:
    """The fused activation of an op whose options table has one (FULLY_CONNECTED, ADD, ...)."""
    table = op.BuiltinOptions()
    options_class = getattr(tflite, _OPTION_NAMES.get(op.BuiltinOptionsType(), ""), None)
    if table is None or options_class is None:
        return _ACTIVATION_NAMES[0]
    options = options_class()
    options.Init(table.Bytes, table.Pos)
    code = options.FusedActivationFunction() if hasattr(options, "FusedActivationFunction") else 0
    return _ACTIVATION_NAMES.get(code, str(code))


def _beta(op: tflite.Operator) -> float:
    table = op.BuiltinOptions()
    if table is None or _OPTION_NAMES.get(op.BuiltinOptionsType()) != "SoftmaxOptions":
        return 1.0
    options = tflite.SoftmaxOptions()
    options.Init(table.Bytes, table.Pos)
    return float(options.Beta())


_PADDING_NAMES = _names(tflite.Padding)
_SKIPPED_METHODS = ("Init", "GetRootAs")


def _snake(name: str) -> str:
    """DilationHFactor -> dilation_h_factor, as TFLite's schema spells its fields."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _options(op: tflite.Operator) -> dict[str, Any]:
    """Every field of the op's builtin options table, read through its generated accessors."""
    table = op.BuiltinOptions()
    options_class = getattr(tflite, _OPTION_NAMES.get(op.BuiltinOptionsType(), ""), None)
    if table is None or options_class is None:
        return {}
    options = options_class()
    options.Init(table.Bytes, table.Pos)
    fields: dict[str, Any] = {}
    for name in dir(options_class):
        if name.startswith("_") or name.startswith(_SKIPPED_METHODS) or name.endswith(("AsNumpy", "Length", "IsNone")):
            continue
        if name.endswith("BufferHasIdentifier"):
            continue
        if hasattr(options_class, f"{name}Length"):  # a vector: (j) per element
            count = getattr(options, f"{name}Length")()
            fields[_snake(name)] = tuple(getattr(options, name)(j) for j in range(count))
            continue
        value = getattr(options, name)()
        if isinstance(value, (int, float, bool)):
            fields[_snake(name)] = value
    if "padding" in fields:
        fields["padding"] = _PADDING_NAMES.get(fields["padding"], str(fields["padding"]))
    if "fused_activation_function" in fields:
        code = fields["fused_activation_function"]
        fields["fused_activation_function"] = _ACTIVATION_NAMES.get(code, str(code))
    return fields


def _tensor(model: tflite.Model, index: int, t: tflite.Tensor) -> Tensor:
    dtype = _TYPE_NAMES.get(t.Type(), str(t.Type()))
    q = t.Quantization()
    scales = np.asarray(q.ScaleAsNumpy() if q is not None and q.ScaleLength() else [], dtype=np.float32)
    zps = np.asarray(q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else [], dtype=np.int64)
    shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else []))
    buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    raw = bytes(buffer.DataAsNumpy()) if buffer is not None and buffer.DataLength() else None
    values = None
    if raw is not None and dtype in _DTYPES:
        values = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    name = t.Name()
    return Tensor(index, name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name), shape, dtype,
                  scales, zps, values)


def read(data: bytes) -> TfliteModel:
    """The model in data, after tflite_verify has checked every offset the accessors below follow
    (they raise struct.error or IndexError on a bad one, and TFLM crashes on it)."""
    verify(data)
    try:
        return _parse(data)
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:  # a gap in verify: still one line
        raise ModelFormatError(f"not a readable TFLite flatbuffer: {type(exc).__name__}: {exc}") from exc


def _parse(data: bytes) -> TfliteModel:
    """The schema accessors' reading of a verified flatbuffer (tests call it to find verify's gaps)."""
    model = tflite.Model.GetRootAsModel(bytearray(data), 0)
    subgraphs = model.SubgraphsLength()
    if subgraphs != 1:
        raise ModelFormatError(f"expected one subgraph, found {subgraphs}")
    graph = model.Subgraphs(0)
    tensors = [_tensor(model, i, graph.Tensors(i)) for i in range(graph.TensorsLength())]
    operators = []
    for i in range(graph.OperatorsLength()):
        o = graph.Operators(i)
        code = model.OperatorCodes(o.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        operators.append(Operator(i, _OP_NAMES.get(builtin, f"BUILTIN_{builtin}"),
                                  tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else (),
                                  tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else (),
                                  _activation(o), _beta(o), _options(o)))
    inputs = tuple(int(x) for x in graph.InputsAsNumpy()) if graph.InputsLength() else ()
    outputs = tuple(int(x) for x in graph.OutputsAsNumpy()) if graph.OutputsLength() else ()
    return TfliteModel(tensors, operators, inputs, outputs, hashlib.sha256(data).hexdigest())
