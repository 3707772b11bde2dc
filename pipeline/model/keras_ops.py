"""The Keras layers a --keras model cannot be deployed with, found before calibration.

TensorFlow's int8 calibration can die natively on a layer it cannot quantize (a recurrent layer with
its batch fixed at one becomes a WHILE loop, and the calibrator crashes with signal 11), so no Python
error would say which layer it was. The float conversion is cheap and never calibrates: its ops, each
traced to the layer its output tensors name, are held to the ops the project runs (an op unit in
pipeline/int8/ops, or a builtin the board's TFLM library registers: the build passes that list in, as
this folder does not import pipeline.emit) before the int8 conversion starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol

import keras
import tflite

from pipeline.int8.ops import UNITS
from pipeline.model import quantize

CONTROL_FLOW = ("WHILE", "IF", "CALL_ONCE")
"""Builtins the board's library registers that run subgraphs of their own: the project reads one graph."""

_BUILTIN_NAMES = {code: name for name, code in vars(tflite.BuiltinOperator).items() if not name.startswith("_")}
_CUSTOM = 32


class Traced(Protocol):
    """What pipeline.model.load.KerasModel gives: the renamed model and how to trace a tensor to its layer."""

    model: keras.Model
    input_shape: tuple[int, ...]
    layer_names: tuple[str, ...]

    def layer_of(self, tensor_name: str) -> str: ...


@dataclass(frozen=True)
class FloatOp:
    index: int
    op: str
    """The builtin's name (WHILE, GELU), or `custom op 'Name'`."""
    outputs: tuple[str, ...]
    """Its output tensors' names, which carry the Keras layer's name."""


def main_graph_ops(data: bytes) -> list[FloatOp]:
    """The ops of the flatbuffer's first subgraph: any other subgraph is reached only through one of them."""
    model = tflite.Model.GetRootAsModel(bytearray(data), 0)
    graph = model.Subgraphs(0)
    ops = []
    for i in range(graph.OperatorsLength()):
        o = graph.Operators(i)
        code = model.OperatorCodes(o.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        name = (f"custom op '{custom.decode(errors='replace') if isinstance(custom, bytes) else custom}'"
                if builtin == _CUSTOM else _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
        outputs = tuple(_text(graph.Tensors(int(t)).Name()) for t in o.OutputsAsNumpy()) if o.OutputsLength() else ()
        ops.append(FloatOp(i, name, outputs))
    return ops


def runnable(op: str, tflm_has: Callable[[str], object]) -> bool:
    """An op unit of the integer reference (the AOT engine's), or a builtin the board's TFLM library
    registers (tflm_has: pipeline.emit.tflm_ops.resolver_method), other than control flow."""
    return op in UNITS or (op not in CONTROL_FLOW and bool(tflm_has(op)))


def _text(name: bytes | str) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def refusal(given: Traced, tflm_has: Callable[[str], object], tree: str) -> str | None:
    """Why the model cannot be deployed, naming the layer, its class and the op, when its float conversion
    (batch of one, as the int8 one) holds an op no engine runs or TensorFlow cannot convert it at all;
    None when every op is one the project runs. Nothing is calibrated."""
    try:
        data = quantize.float_tflite(quantize.batch_of_one(given.model, given.input_shape))
    except Exception as exc:  # ConverterError, or any failure of the converter on this model
        return _converter_refusal(given, str(exc) or type(exc).__name__)
    refused = [(op, _layer_of(given, op)) for op in main_graph_ops(data) if not runnable(op.op, tflm_has)]
    if not refused:
        return None
    layer = refused[0][1]
    ops = list(dict.fromkeys(op.op for op, of in refused if of == layer)) if layer else [refused[0][0].op]
    if layer:
        what = f"layer '{layer}' ({_layer_class(given, layer)}) becomes {_named(ops)}"
    else:
        what = f"op {refused[0][0].index} {ops[0]} (its tensors name no Keras layer)"
    return f"{what}, which the int8 pipeline cannot run ({_why(ops, tree)}); {_remedy(given, layer)}"


def _layer_of(given: Traced, op: FloatOp) -> str:
    return next((found for found in map(given.layer_of, op.outputs) if found), "")


def _named(ops: list[str]) -> str:
    """REVERSE_V2 and a WHILE loop: control flow said as what it is."""
    return " and ".join(f"a {op} loop" if op == "WHILE" else f"an {op} branch" if op == "IF" else op for op in ops)


def _why(ops: list[str], tree: str) -> str:
    """Control flow first (it is why calibration would have crashed), then ops no engine has."""
    loops = [op for op in ops if op in CONTROL_FLOW]
    others = [op for op in ops if op not in CONTROL_FLOW]
    reasons = []
    if loops:
        subject = "the loop's body is" if loops == ["WHILE"] else "it runs"
        reasons.append(f"{subject} a subgraph of its own and the "
                       "project runs one graph of ops" + ("; TensorFlow's int8 calibration crashes on such a loop"
                                                          if "WHILE" in loops else ""))
    if others:
        reasons.append(f"neither the board's TFLM library ({tree}) nor the AOT engine has "
                       f"{' or '.join(others)}")
    return "; ".join(reasons)


def _remedy(given: Traced, name: str) -> str:
    """Unrolling, for a recurrent layer: with its time steps fixed it converts to plain ops the TFLM engine runs."""
    layer = _layer(given, name)
    inner = getattr(layer, "forward_layer", None) if isinstance(layer, keras.layers.Bidirectional) else None
    if isinstance(layer, keras.layers.RNN) or isinstance(inner, keras.layers.RNN):
        made = (f"Bidirectional({type(inner).__name__}(..., unroll=True))" if inner is not None
                else f"{type(layer).__name__}(..., unroll=True)")
        return f"make it {made}: its time steps are fixed, so it then converts to plain ops the TFLM engine runs"
    return "replace the layer, or export the model without it"


def _layer(given: Traced, name: str) -> keras.layers.Layer | None:
    """The (renamed) layer an original name stands for in given.model."""
    names = [layer.name for layer in given.model.layers]
    wanted = f"tinyml_layer{given.layer_names.index(name)}x" if name in given.layer_names else name
    return given.model.layers[names.index(wanted)] if wanted in names else None


def _layer_class(given: Traced, name: str) -> str:
    layer = _layer(given, name)
    return type(layer).__name__ if layer is not None else "a layer"


def _converter_refusal(given: Traced, message: str) -> str:
    """A converter error as one line: the layer and class its MLIR location names, and the TensorFlow op
    that has no TFLite builtin (the converter's 'TF Select ops: Cumprod'), else its first error line."""
    layer = given.layer_of(message)
    who = f"layer '{layer}' ({_layer_class(given, layer)})" if layer else "the model"
    select = re.search(r"TF Select ops: ([^\n]+)", message)
    if select:
        return (f"{who} uses TensorFlow's {select.group(1).strip()}, which has no TFLite builtin op, so the "
                f"converter cannot take it (the device runs builtin ops only); "
                f"{_remedy(given, layer) if layer else 'replace the layer, or export the model without it'}")
    reason = next((line for line in message.splitlines() if "error:" in line), message.splitlines()[0])
    reason = re.sub(r"^.*error: (loc\(.*?\)\)\)*: )?", "", reason).strip()
    return f"TensorFlow's converter cannot take {who}: {reason[:240]}"
