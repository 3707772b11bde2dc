"""The C text the op units write for the AOT engine's kernels (firmware/engines/aot/<kernel>.h): static
constant arrays and the struct each kernel reads, named by the emitter, one op at a time."""
from __future__ import annotations

from typing import Any

import numpy as np

MAX_RANK = 6
"""AOT_MAX_RANK of aot/common.h: the most dimensions a broadcast, MEAN or PAD walks."""


def array(ctype: str, name: str, values: Any) -> str:
    """`static const <ctype> <name>[n] = {...};`, 16 values a line."""
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    rows = [", ".join(flat[i:i + 16]) for i in range(0, len(flat), 16)]
    body = ",\n  ".join(rows)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n  {body}\n}};\n"


def struct(kernel: str, name: str, fields: dict[str, Any], comment: str) -> str:
    """The kernel's parameters: `static const struct aot_<kernel> <name> = {.field = value, ...};`."""
    body = ",\n  ".join(f".{key} = {braces(value)}" for key, value in fields.items())
    return f"/* {comment} */\nstatic const struct aot_{kernel} {name} = {{\n  {body}\n}};\n"


def braces(value: Any) -> str:
    """A C initializer: numbers as they are, sequences in braces, strings (array names) bare."""
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(braces(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f".{k} = {braces(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def strides(shape: tuple[int, ...]) -> list[int]:
    """Row-major steps, in values, of each dimension."""
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return out[::-1]


def padded(values: list[int], fill: int = 0) -> list[int]:
    """A fixed-size array field of MAX_RANK entries."""
    if len(values) > MAX_RANK:
        raise ValueError(f"{len(values)} dimensions: the AOT kernels walk at most {MAX_RANK}")
    return list(values) + [fill] * (MAX_RANK - len(values))


def broadcast(out_shape: tuple[int, ...], a: tuple[int, ...], b: tuple[int, ...]) -> dict[str, Any]:
    """aot_broadcast's fields: the output's shape and each operand's step along it (0 where it repeats)."""
    rank = max(len(out_shape), len(a), len(b))
    out = (1,) * (rank - len(out_shape)) + tuple(out_shape)

    def steps(shape: tuple[int, ...]) -> list[int]:
        full = (1,) * (rank - len(shape)) + tuple(shape)
        return [s if d == o else 0 for s, d, o in zip(strides(full), full, out)]
    return {"rank": rank, "shape": padded(list(out), 1), "step_a": padded(steps(a)), "step_b": padded(steps(b))}
