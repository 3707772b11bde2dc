"""Reads an int8 TFLite flatbuffer into plain numpy structures (no interpreter).

The schema bindings are TensorFlow's own generated module, loaded by file path so
that reading a model does not pay for importing TensorFlow.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np


class ModelFormatError(ValueError):
    """The flatbuffer is not a model this project can read."""


@lru_cache(maxsize=1)
def schema() -> ModuleType:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or spec.origin is None:
        raise ModelFormatError("reading a .tflite file needs the tensorflow package (its schema bindings)")
    path = Path(spec.origin).parent / "lite" / "python" / "schema_py_generated.py"
    module_spec = importlib.util.spec_from_file_location("tflite_schema", path)
    if module_spec is None or module_spec.loader is None:
        raise ModelFormatError(f"tensorflow has no TFLite schema at {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


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


@dataclass(frozen=True)
class TfliteModel:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    sha256: str = field(default="")

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
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def read(data: bytes) -> TfliteModel:
    s = schema()
    try:
        model = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:
        raise ModelFormatError(f"not a TFLite flatbuffer: {exc}") from exc
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ModelFormatError(f"expected one subgraph, found {len(model.subgraphs or [])}")
    type_names = _names(s.TensorType)
    op_names = _names(s.BuiltinOperator)
    act_names = _names(s.ActivationFunctionType)
    graph = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(graph.tensors):
        dtype = type_names.get(t.type, str(t.type))
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], dtype=np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], dtype=np.int64)
        buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        raw = None if buffer is None or buffer.data is None or len(buffer.data) == 0 else bytes(buffer.data)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        values = None
        if raw is not None and dtype in _DTYPES:
            values = np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<")).reshape(shape)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, shape, dtype, scales, zps, values))
    operators = []
    for i, o in enumerate(graph.operators):
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        options = o.builtinOptions
        activation = getattr(options, "fusedActivationFunction", 0) if options is not None else 0
        operators.append(Operator(i, op_names.get(builtin, f"BUILTIN_{builtin}"), tuple(int(x) for x in o.inputs),
                                  tuple(int(x) for x in o.outputs), act_names.get(activation, str(activation))))
    return TfliteModel(tensors, operators, tuple(int(x) for x in graph.inputs), tuple(int(x) for x in graph.outputs),
                       hashlib.sha256(data).hexdigest())
