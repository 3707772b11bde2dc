"""One module per TFLite op (or family of ops computed alike): what the project knows of it, in one place.

Each unit names the ops it computes (NAMES), says whether the AOT engine has its kernel (AOT), and
gives, for one op of a model:

    macs(model, op) -> int       multiply-accumulates per inference, as the field counts them: a
                                 convolution's or a dense layer's weights applied once per output
                                 value; pooling, one per window element read; ADD and MUL, one per
                                 output value; MEAN, one per value summed; the others none
    lower(model, op, board)      its integer parameters (multipliers, shifts, offsets, tables, window
                                 geometry) as TFLM's prepare computes them; board: as the board's
                                 older library does where the two differ. Raises
                                 UnsupportedModelError naming the op and what it cannot take
    apply(layer, *activations)   its int8 kernel on a batch of inferences: each activation input as
                                 [batch, *its shape without the model's batch dimension]

pipeline.int8.reference runs a model's units in its op order; the emitter writes each unit's tables
for the AOT engine's kernel of the same name (firmware/engines/aot/).
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from pipeline.int8.ops.shapes import UnsupportedModelError
from pipeline.int8.tflite_model import TfliteModel


def _units() -> dict[str, ModuleType]:
    """Every module of this package that names ops (NAMES) is their unit: adding an op is adding its
    module here and its kernel in firmware/engines/aot/, nothing else."""
    units: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name in getattr(module, "NAMES", ()):
            if name in units:
                raise ImportError(f"op {name} has two units: {units[name].__name__} and {module.__name__}")
            units[name] = module
    return units


UNITS: dict[str, ModuleType] = _units()

__all__ = ["UNITS", "UnsupportedModelError", "macs", "macs_by_op", "missing_kernel"]


def macs(model: TfliteModel) -> int:
    """Multiply-accumulates of one inference of the whole model."""
    return sum(UNITS[op.op].macs(model, op) for op in model.operators if op.op in UNITS)


def macs_by_op(model: TfliteModel) -> dict[str, int]:
    """The same, per op name, in first-use order (ops that multiply nothing left out)."""
    counts: dict[str, int] = {}
    for op in model.operators:
        if op.op in UNITS and UNITS[op.op].macs(model, op):
            counts[op.op] = counts.get(op.op, 0) + UNITS[op.op].macs(model, op)
    return counts


def missing_kernel(model: TfliteModel) -> str | None:
    """The first op the AOT engine has no kernel for, said as a refusal; None when it has them all."""
    kernels = [name for name, unit in UNITS.items() if unit.AOT]
    for op in model.operators:
        if op.op not in kernels:
            return (f"op {op.index} is {op.op}; the AOT engine computes only {', '.join(kernels)} "
                    "(use the TFLM engine for this model)")
    return None
