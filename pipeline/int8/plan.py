"""The AOT engine's static memory plan: where each tensor's bytes live, decided at build time.

The model's input is the caller's buffer (read only) and its output the caller's too; every other
tensor gets bytes in one arena, and tensors alive at different times share them. A tensor lives from
the op that writes it to the last op that reads it. RESHAPE and its kin (units with ALIAS) give their
output their input's bytes; an op that may overwrite its input (units with IN_PLACE: LOGISTIC, TANH,
SOFTMAX; or whose in_place(layer) says so: a stride-1 depthwise or 1x1 convolution, a max pooling
without padding before its input) writes over it when no later op reads it. Tensors sharing bytes
start at one offset, each holding its own bytes for its own life: once a pooling has written its
smaller output over its input, the input's tail is free for the next tensors. Placement is greedy,
largest first, each at the lowest offset (a multiple of ALIGN) free for its whole life, as TFLM's
GreedyMemoryPlanner places its arena; the peak is the arena's size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from pipeline import board
from pipeline.board import APP_CORE_BYTES
from pipeline.int8.ops import shapes
from pipeline.int8.tflite_model import Tensor

ALIGN = 4
"""Every tensor starts on a word: the kernels may load four codes at once."""


@dataclass(frozen=True)
class Place:
    where: str        # "input", "output" or "arena"
    offset: int = 0   # in the arena


@dataclass
class Plan:
    places: dict[int, Place]
    arena_bytes: int
    aliases: set[int] = field(default_factory=set)
    """Steps of an ALIAS unit with nothing to do: their output has their input's bytes. One that would
    make the model's output its input is not among them: it runs, a copy."""
    peak_step: int = -1
    peak_tensors: tuple[int, ...] = ()
    """The tensors in the arena at the step where the most bytes are live (the peak of the live bytes,
    which the arena can only exceed by fragmentation)."""
    live_bytes: int = 0


class _Groups:
    """Tensors that share bytes (union-find)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def plan(steps: Sequence, sizes: dict[int, int], model_input: int, model_output: int) -> Plan:
    """steps: the model's ops in order, each with .unit, .inputs (tensors read) and .output; sizes:
    bytes of each tensor."""
    groups = _Groups()
    aliases: set[int] = set()

    def special(t: int) -> str | None:
        root = groups.find(t)
        if root == groups.find(model_input):
            return "input"
        return "output" if root == groups.find(model_output) else None

    for k, step in enumerate(steps):  # aliases first: they decide which tensors are the caller's
        if getattr(step.unit, "ALIAS", False):
            kinds = {special(step.inputs[0]), special(step.output)}
            if kinds != {"input", "output"}:  # else the model's output would be its input: it copies
                groups.union(step.output, step.inputs[0])
                aliases.add(k)

    def readers(t: int) -> list[int]:
        root = groups.find(t)
        return [k for k, s in enumerate(steps) if any(groups.find(i) == root for i in s.inputs)]

    for k, step in enumerate(steps):
        in_place = getattr(step.unit, "in_place", None)  # a unit that writes over its input for some layers
        if not (getattr(step.unit, "IN_PLACE", False) or (in_place is not None and in_place(step.layer))):
            continue
        source = step.inputs[0]
        if (special(source) is None and special(step.output) is None and max(readers(source)) == k
                and sizes[step.output] <= sizes[source]):
            groups.union(step.output, source)

    members: dict[int, list[int]] = {}
    for t in {t for s in steps for t in (*s.inputs, s.output)} | {model_input, model_output}:
        members.setdefault(groups.find(t), []).append(t)
    places: dict[int, Place] = {}
    spans: dict[int, list[Span]] = {}  # group root -> each member's life and bytes, from the group's offset
    for root, tensors in members.items():
        kind = special(root)
        if kind is not None:
            for t in tensors:
                places[t] = Place(kind)
            continue
        written = [k for k, s in enumerate(steps) if groups.find(s.output) == root]
        start = min(written) if written else 0
        spans[root] = []
        for t in tensors:
            first = min([k for k, s in enumerate(steps) if s.output == t] or [start])
            last = max([k for k, s in enumerate(steps) if t in s.inputs] + [first])
            spans[root].append(Span(t, first, last, sizes[t]))

    for k, step in enumerate(steps):  # a kernel's scratch: arena bytes alive during its own step only
        need = getattr(step.unit, "scratch_bytes", None)
        size = need(step.layer) if need is not None else 0
        if size > 0:
            spans[scratch_key(k)] = [Span(scratch_key(k), k, k, size)]

    offsets = _place(spans)
    for root, pieces in spans.items():
        for piece in pieces:
            places[piece.tensor] = Place("arena", offsets[root])
    arena = max([offsets[r] + piece.size for r, pieces in spans.items() for piece in pieces] + [0])
    peak_step, peak, live = -1, (), 0
    for k in range(len(steps)):
        alive = [[p for p in pieces if p.first <= k <= p.last] for pieces in spans.values()]
        total = sum(max(p.size for p in group) for group in alive if group)
        if total > live:
            peak_step, live = k, total
            peak = tuple(sorted(p.tensor for group in alive for p in group))
    return Plan(places, _aligned(arena), aliases, peak_step, peak, live)


@dataclass(frozen=True)
class Span:
    """A tensor's bytes from its group's offset, alive from the step that writes it to the last that reads it."""
    tensor: int
    first: int
    last: int
    size: int


def scratch_key(step: int) -> int:
    """The plan's key of a step's scratch bytes (a kernel's working buffer, e.g. CONV_2D's im2col):
    negative, so no tensor index."""
    return -(step + 1)


def _name(names: dict[int, str], t: int) -> str:
    return f"op {-t - 1}'s scratch" if t < 0 else names.get(t, str(t))


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _place(spans: dict[int, list[Span]]) -> dict[int, int]:
    """Greedy: largest first (earliest first among equals), each group at the lowest aligned offset
    where none of its members overlaps a placed member alive at the same time."""
    placed: list[tuple[int, Span]] = []  # (offset, member)
    offsets = {}
    for root in sorted(spans, key=lambda r: (-max(p.size for p in spans[r]), min(p.first for p in spans[r]), r)):
        offset, moved = 0, True
        while moved:  # past each clash, until none is left: the lowest offset that clashes with nothing
            moved = False
            for other_offset, other in placed:
                if any(p.first <= other.last and other.first <= p.last and offset < other_offset + other.size
                       and other_offset < offset + p.size for p in spans[root]):
                    offset, moved = _aligned(other_offset + other.size), True
        offsets[root] = offset
        placed.extend((offset, p) for p in spans[root])
    return offsets


def tensor_bytes(tensors: Sequence[Tensor]) -> dict[int, int]:
    """Bytes of one inference of each tensor (int8: one a value)."""
    return {t.index: shapes.values(t.shape) for t in tensors}


def board_refusal(layout: Plan, steps: Sequence, names: dict[int, str], inputs: int, outputs: int) -> str | None:
    """Why the plan cannot fit the board's RAM beside the firmware's own buffers, naming the largest
    set of tensors alive at once; None when it fits."""
    need = layout.arena_bytes + inputs + outputs + APP_CORE_BYTES
    if need <= board.MODEL_RAM_BYTES:
        return None
    where = f"the model's input ({inputs} B), output ({outputs} B) and the protocol core ({APP_CORE_BYTES} B)"
    if layout.peak_tensors:
        live = ", ".join(f"'{_name(names, t)}'" for t in layout.peak_tensors[:6]) + (
            f" and {len(layout.peak_tensors) - 6} more" if len(layout.peak_tensors) > 6 else "")
        op = steps[layout.peak_step].op
        where = (f"the AOT engine's tensors need a {layout.arena_bytes} B arena ({layout.live_bytes} B alive at once "
                 f"at op {op.index} {op.op}: {live}), and with {where}")
    else:
        where = f"the AOT engine needs no arena, but {where} need"
    return f"{where} {need} B, more than {board.RAM_TEXT}"


def summary(layout: Plan, steps: Sequence, names: dict[int, str]) -> dict[str, object]:
    """The plan as report.json holds it."""
    peak_op = steps[layout.peak_step].op if layout.peak_step >= 0 else None
    return {"arena_bytes": layout.arena_bytes, "peak_live_bytes": layout.live_bytes,
            "peak_op": f"op {peak_op.index} {peak_op.op}" if peak_op is not None else None,
            "peak_tensors": [_name(names, t) for t in layout.peak_tensors]}
