"""Checks a TFLite flatbuffer's structure over its raw bytes before anything else reads it.

Neither tflite-micro's runtime nor the `tflite` package's generated accessors check an offset:
one changed byte sends TFLM's C++ past the end of the buffer (a segmentation fault) and the
Python accessors into struct.error. So every table, vtable, vector, string and union that the
project's reader or TFLM follows is checked here to lie inside the file, with struct and explicit
bounds, and then the indices and sizes those structures carry: tensor, operator-code, buffer and
subgraph indices in range, each constant buffer exactly the size its tensor's shape and type
need, shapes non-negative and of a size a microcontroller could hold. A bad file raises
ModelFormatError naming the problem and where it is (the byte offset and the table's path).
"""
from __future__ import annotations

import functools
import inspect
import math
import re
import struct
from dataclasses import dataclass, field

from pipeline.errors import BadInput


class ModelFormatError(BadInput, ValueError):
    """The flatbuffer is not a model this project can read."""


IDENTIFIER = b"TFL3"
MAX_RANK = 8
"""TFLM's kernels take up to 6 dimensions; 8 leaves room and still bounds the work."""
MAX_TENSOR_BYTES = 1 << 28
"""256 MiB: far beyond any microcontroller's memory, and small enough for the host oracle's arena."""

# TensorType code -> (name, bytes per element; 0: not a fixed-size element; -1: int4, two a byte).
TENSOR_TYPES: dict[int, tuple[str, int]] = {
    0: ("FLOAT32", 4), 1: ("FLOAT16", 2), 2: ("INT32", 4), 3: ("UINT8", 1), 4: ("INT64", 8), 5: ("STRING", 0),
    6: ("BOOL", 1), 7: ("INT16", 2), 8: ("COMPLEX64", 8), 9: ("INT8", 1), 10: ("FLOAT64", 8),
    11: ("COMPLEX128", 16), 12: ("UINT64", 8), 13: ("RESOURCE", 0), 14: ("VARIANT", 0), 15: ("UINT32", 4),
    16: ("UINT16", 2), 17: ("INT4", -1), 18: ("BFLOAT16", 2),
}

_WIDTHS = {"Bool": 1, "Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4,
           "Int64": 8, "Uint64": 8, "Float64": 8}


@functools.cache
def _option_fields(options_type: int) -> dict[int, tuple]:
    """An options table's fields, slot -> ("scalar", width), ("vec", element width) or ("str",),
    learnt from the `tflite` package's generated accessors (the ones the reader calls), so that
    each is checked at the width it is read; {} for a type the package does not know."""
    import tflite  # the schema's generated code: its source says each field's kind and width

    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if isinstance(v, int) and not k.startswith("_")}
    options_class = getattr(tflite, names.get(options_type, ""), None)
    fields: dict[int, tuple] = {}
    for attr in dir(options_class) if options_class is not None else ():
        if attr.startswith("_") or attr.endswith(("Length", "AsNumpy", "IsNone")):
            continue
        try:
            source = inspect.getsource(getattr(options_class, attr))
        except (OSError, TypeError):  # installed without sources: the generic vtable check remains
            continue
        slot = re.search(r"Offset\((\d+)\)", source)
        if slot is None:
            continue
        index = (int(slot.group(1)) - 4) // 2
        element = re.search(r"j \* (\d+)", source)
        scalar = re.search(r"Get\(flatbuffers\.number_types\.(\w+)Flags", source)
        if "String(" in source:
            fields[index] = ("str",)
        elif "Vector(" in source and element is not None:
            fields[index] = ("vec", int(element.group(1)))
        elif scalar is not None and scalar.group(1) in _WIDTHS:
            fields[index] = ("scalar", _WIDTHS[scalar.group(1)])
    return fields


@dataclass
class TensorFacts:
    """What the semantic checks need of one tensor, read from verified bytes."""
    offset: int
    name: str
    shape: tuple[int, ...]
    type: int
    buffer: int
    scales: int = 0
    zero_points: int = 0
    quantized_dimension: int = 0


@dataclass
class OperatorFacts:
    offset: int
    opcode: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]


@dataclass
class SubgraphFacts:
    offset: int
    tensors: list[TensorFacts] = field(default_factory=list)
    operators: list[OperatorFacts] = field(default_factory=list)
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()


class _Bytes:
    """Bounds-checked reads of a flatbuffer's primitives; each failure names its offset and path."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def fail(self, offset: int, where: str, problem: str) -> None:
        raise ModelFormatError(f"offset {offset}{f' ({where})' if where else ''}: {problem}")

    def past_end(self, offset: int, where: str, what: str) -> None:
        self.fail(offset, where, f"{what} runs past the end of the file ({self.size:,} bytes)")

    def unpack(self, fmt: str, offset: int, where: str, what: str) -> int | float:
        width = struct.calcsize(fmt)
        if offset < 0 or offset + width > self.size:
            self.past_end(offset, where, what)
        return struct.unpack_from(fmt, self.data, offset)[0]

    def table(self, pos: int, where: str) -> "_Table":
        """A table at pos: its vtable (pos minus the signed offset stored there) inside the file,
        even-sized and at least 4 bytes, and the table's inline size inside the file too."""
        if pos % 4:
            self.fail(pos, where, "a table not aligned to 4 bytes")
        relative = self.unpack("<i", pos, where, "the table")
        vtable = pos - relative
        if vtable < 0 or vtable % 2 or vtable + 4 > self.size:
            self.fail(pos, where, f"the table's vtable offset {relative} points outside the file ({self.size:,} bytes)")
        vt_size = self.unpack("<H", vtable, where, "the vtable")
        inline = self.unpack("<H", vtable + 2, where, "the vtable")
        if vt_size < 4 or vt_size % 2:
            self.fail(vtable, where, f"a vtable of {vt_size} bytes (at least 4, and even)")
        if vtable + vt_size > self.size:
            self.past_end(vtable, where, f"the vtable of {vt_size} bytes")
        if inline < 4 or pos + inline > self.size:
            self.fail(pos, where, f"the table's {inline} inline bytes run past the end of the file ({self.size:,} bytes)"
                      if inline >= 4 else f"a table of {inline} inline bytes (at least 4)")
        fields = struct.unpack_from(f"<{vt_size // 2 - 2}H", self.data, vtable + 4)
        if fields and max(fields) >= inline:  # every field, read or not, starts inside the table
            self.fail(vtable, where, f"the vtable places field {fields.index(max(fields))} at byte {max(fields)} "
                      f"of a table of {inline} bytes")
        return _Table(self, pos, vtable, vt_size, inline, where)


@dataclass
class _Table:
    buf: _Bytes
    pos: int
    vtable: int
    vt_size: int
    inline: int
    where: str

    def slot(self, index: int, width: int, what: str) -> int:
        """The field's absolute offset (0: absent), checked to lie inside the table's inline bytes."""
        entry = 4 + 2 * index
        if entry + 2 > self.vt_size:
            return 0
        relative = self.buf.unpack("<H", self.vtable + entry, self.where, "the vtable")
        if relative == 0:
            return 0
        if relative + width > self.inline:
            self.buf.fail(self.pos + relative, self.here(what),
                          f"the field lies outside its table ({self.inline} bytes at offset {self.pos})")
        return self.pos + relative

    def here(self, what: str) -> str:
        return f"{self.where}, {what}" if self.where else what

    def scalar(self, index: int, fmt: str, default: int | float, what: str) -> int | float:
        at = self.slot(index, struct.calcsize(fmt), what)
        return default if not at else self.buf.unpack(fmt, at, self.here(what), what)

    def target(self, index: int, what: str) -> int:
        """Where an offset field points (0: absent): forward, inside the file, 4-aligned."""
        at = self.slot(index, 4, what)
        if not at:
            return 0
        where = self.here(what)
        if at % 4:
            self.buf.fail(at, where, "an offset not aligned to 4 bytes")
        relative = self.buf.unpack("<I", at, where, what)
        goal = at + relative
        if relative == 0 or goal + 4 > self.buf.size:
            self.buf.fail(at, where, f"its offset {relative} points outside the file ({self.buf.size:,} bytes)")
        return goal

    def vector(self, index: int, width: int, what: str, required: bool = False) -> tuple[int, int]:
        """(first element's offset, count), every element inside the file; (0, 0) when absent
        (required: absent is refused, as TFLM follows it without looking)."""
        start = self.target(index, what)
        if not start and required:
            self.buf.fail(self.pos, self.where, f"its {what} vector is missing")
        return (0, 0) if not start else _vector_at(self.buf, start, width, self.here(what))

    def ints(self, index: int, what: str, fmt: str = "<i", required: bool = False) -> tuple[int, ...]:
        start, count = self.vector(index, struct.calcsize(fmt), what, required)
        return struct.unpack_from(f"<{count}{fmt[1:]}", self.buf.data, start) if count else ()

    def string(self, index: int, what: str) -> str:
        start = self.target(index, what)
        if not start:
            return ""
        first, count = _vector_at(self.buf, start, 1, self.here(what))
        if first + count >= self.buf.size or self.buf.data[first + count] != 0:
            self.buf.fail(start, self.here(what), "a string without its terminating zero byte inside the file")
        return self.buf.data[first:first + count].decode("utf-8", "replace")

    def tables(self, index: int, what: str, each: str, required: bool = False) -> list[_Table]:
        """A vector of tables (what: the vector's name, each: an element's), each followed and checked."""
        first, count = self.vector(index, 4, what, required)
        found = []
        for k in range(count):
            at = first + 4 * k
            relative = struct.unpack_from("<I", self.buf.data, at)[0]
            where = f"{self.here(each)} {k}"
            if relative == 0 or at + relative + 4 > self.buf.size:
                self.buf.fail(at, where, f"its offset {relative} points outside the file ({self.buf.size:,} bytes)")
            found.append(self.buf.table(at + relative, where))
        return found

    def table(self, index: int, what: str) -> _Table | None:
        start = self.target(index, what)
        return self.buf.table(start, self.here(what)) if start else None


def _vector_at(buf: _Bytes, start: int, width: int, where: str) -> tuple[int, int]:
    count = buf.unpack("<I", start, where, "the vector's length")
    if count * width > buf.size - start - 4:
        buf.past_end(start, where, f"a vector of {count:,} {width}-byte elements")
    return start + 4, count


def verify(data: bytes) -> list[SubgraphFacts]:
    """Checks the whole flatbuffer; returns the subgraphs' facts. Raises ModelFormatError."""
    if len(data) < 8:
        raise ModelFormatError(f"not a TFLite flatbuffer: {len(data)} bytes, too short for its header")
    if data[4:8] != IDENTIFIER:
        raise ModelFormatError("not a TFLite flatbuffer (no TFL3 identifier at byte 4)")
    return _check(_Bytes(bytes(data)))


def _check(buf: _Bytes) -> list[SubgraphFacts]:
    """verify's walk over the bytes in buf (a test passes a _Bytes that records what is read)."""
    root = buf.unpack("<I", 0, "", "the root offset")
    if root < 8 or root + 4 > buf.size:
        buf.fail(0, "the root offset", f"{root} points outside the file ({buf.size:,} bytes)")
    model = buf.table(root, "")
    codes = model.tables(1, "operator codes", "operator code", required=True)
    for code in codes:
        code.string(1, "custom code")
        builtin = max(code.scalar(0, "<b", 0, "deprecated builtin code"), code.scalar(3, "<i", 0, "builtin code"))
        if builtin < 0:
            buf.fail(code.pos, code.where, f"builtin operator code {builtin} (negative)")
    subgraph_tables = model.tables(2, "subgraphs", "subgraph", required=True)
    model.string(3, "description")
    buffer_tables = model.tables(4, "buffers", "buffer", required=True)
    sizes = [_buffer(buf, b, k) for k, b in enumerate(buffer_tables)]
    model.ints(5, "metadata buffer")
    subgraphs = [_subgraph(buf, s, k, len(codes), sizes) for k, s in enumerate(subgraph_tables)]
    for k, meta in enumerate(model.tables(6, "metadata", "metadata")):
        name = meta.string(0, "name")
        index = meta.scalar(1, "<I", 0, "buffer")
        if index >= len(sizes):
            buf.fail(meta.pos, meta.where, f"metadata '{name}' names buffer {index}, the model has {len(sizes)}")
        if name == "OFFLINE_MEMORY_ALLOCATION":
            _offline_plan(buf, meta, buffer_tables[index], sizes[index], subgraphs)
    for signature in model.tables(7, "signature defs", "signature"):
        graph = signature.scalar(4, "<I", 0, "subgraph index")
        signature.string(2, "key")
        if graph >= len(subgraphs):
            buf.fail(signature.pos, signature.where, f"subgraph index {graph}, the model has {len(subgraphs)}")
        for side in (0, 1):
            for entry in signature.tables(side, "inputs" if side == 0 else "outputs", "entry"):
                entry.string(0, "name")
                tensor = entry.scalar(1, "<I", 0, "tensor index")
                if tensor >= len(subgraphs[graph].tensors):
                    buf.fail(entry.pos, entry.where, f"tensor index {tensor}, subgraph {graph} has "
                             f"{len(subgraphs[graph].tensors)}")
    if not subgraphs:
        raise ModelFormatError("the model has no subgraph")
    return subgraphs


def _buffer(buf: _Bytes, table: _Table, index: int) -> int:
    """The buffer's data size in bytes; data outside the flatbuffer (offset/size) is refused."""
    _, count = table.vector(0, 1, "data")
    offset = table.scalar(1, "<Q", 0, "offset")
    if offset > 1:
        buf.fail(table.pos, table.where, f"its data lies outside the flatbuffer (offset {offset}, size "
                 f"{table.scalar(2, '<Q', 0, 'size')}); this reader takes buffers inside it only")
    return count


def _offline_plan(buf: _Bytes, meta: _Table, buffer: _Table, size: int, subgraphs: list[SubgraphFacts]) -> None:
    """TFLM reads this metadata as int32 [version, subgraph, count, offset per tensor]."""
    start, _ = buffer.vector(0, 1, "data")
    if size < 12 or size % 4:
        buf.fail(meta.pos, meta.where, f"OFFLINE_MEMORY_ALLOCATION holds {size} bytes, not a header of 3 int32 and offsets")
    count = struct.unpack_from("<i", buf.data, start + 8)[0]
    tensors = len(subgraphs[0].tensors) if subgraphs else 0
    if count != tensors or size != 4 * (3 + count):
        buf.fail(meta.pos, meta.where, f"OFFLINE_MEMORY_ALLOCATION plans {count} tensors in {size} bytes; "
                 f"subgraph 0 has {tensors} tensors")


def _subgraph(buf: _Bytes, table: _Table, index: int, codes: int, buffers: list[int]) -> SubgraphFacts:
    facts = SubgraphFacts(table.pos)
    facts.tensors = [_tensor(buf, t, k, buffers) for k, t in enumerate(table.tables(0, "tensors", "tensor", required=True))]
    facts.inputs = table.ints(1, "inputs", required=True)
    facts.outputs = table.ints(2, "outputs", required=True)
    table.string(4, "name")
    facts.operators = [_operator(buf, o) for o in table.tables(3, "operators", "operator", required=True)]
    count = len(facts.tensors)
    where = f"subgraph {index}"
    for role, indices in (("input", facts.inputs), ("output", facts.outputs)):
        for i in indices:
            if not 0 <= i < count:
                raise ModelFormatError(f"{where}: {role} tensor index {i} is out of range (it has {count} tensors)")
    for k, op in enumerate(facts.operators):
        if op.opcode >= codes:
            buf.fail(op.offset, f"{where}, operator {k}", f"operator code index {op.opcode}, the model has {codes}")
        for role, indices, lowest in (("input", op.inputs, -1), ("output", op.outputs, 0),
                                      ("intermediate", op.intermediates, 0)):
            for i in indices:
                if not lowest <= i < count:
                    buf.fail(op.offset, f"{where}, operator {k}",
                             f"{role} tensor index {i} is out of range (the subgraph has {count} tensors)")
    _sizes(facts, where, buffers)
    return facts


def _tensor(buf: _Bytes, table: _Table, index: int, buffers: list[int]) -> TensorFacts:
    name = table.string(3, "name")
    table.where = f"{table.where} '{name}'"
    shape = table.ints(0, "shape")
    facts = TensorFacts(table.pos, name, tuple(shape), int(table.scalar(1, "<b", 0, "type")),
                        int(table.scalar(2, "<I", 0, "buffer")))
    q = table.table(4, "quantization")
    if q is not None:
        q.ints(0, "min", "<f")
        q.ints(1, "max", "<f")
        facts.scales = q.vector(2, 4, "scale")[1]
        facts.zero_points = q.vector(3, 8, "zero point")[1]
        details_type = q.scalar(4, "<B", 0, "details type")
        details = q.table(5, "details")
        if details is not None and details_type == 1:  # CustomQuantization
            details.vector(0, 1, "custom")
        facts.quantized_dimension = int(q.scalar(6, "<i", 0, "quantized dimension"))
    if table.slot(6, 4, "sparsity"):
        buf.fail(table.pos, table.where, "a sparse tensor; this reader and TFLM take dense tensors only")
    table.ints(7, "shape signature")
    for variant in table.tables(9, "variant tensors", "variant tensor"):
        variant.ints(0, "shape")
    if facts.buffer >= len(buffers):
        buf.fail(table.pos, table.where, f"buffer {facts.buffer}, the model has {len(buffers)}")
    return facts


def _operator(buf: _Bytes, table: _Table) -> OperatorFacts:
    facts = OperatorFacts(table.pos, int(table.scalar(0, "<I", 0, "opcode index")), table.ints(1, "inputs", required=True),
                          table.ints(2, "outputs", required=True), table.ints(8, "intermediates"))
    options_type = table.scalar(3, "<B", 0, "builtin options type")
    options = table.table(4, "builtin options")
    if options is not None and options_type == 0:  # TFLM aborts on it (seen on SOFTMAX)
        buf.fail(options.pos, table.where, "a builtin options table whose type is NONE")
    if options is not None:
        for slot, kind in _option_fields(int(options_type)).items():
            if kind[0] == "vec":
                options.vector(slot, kind[1], f"field {slot}")
            elif kind[0] == "str":
                options.string(slot, f"field {slot}")
            else:
                options.slot(slot, kind[1], f"field {slot}")
    table.vector(5, 1, "custom options")
    table.vector(7, 1, "mutating variable inputs")
    large_offset = table.scalar(9, "<Q", 0, "large custom options offset")
    large_size = table.scalar(10, "<Q", 0, "large custom options size")
    if large_offset or large_size:
        if large_offset + large_size > buf.size:
            buf.past_end(table.pos, table.where, f"large custom options ({large_size} bytes at {large_offset})")
    table.table(12, "builtin options 2")
    return facts


def _sizes(graph: SubgraphFacts, where: str, buffers: list[int]) -> None:
    """Shapes sane, quantization matching them, each constant buffer exactly its tensor's size."""
    computed = 0
    for k, t in enumerate(graph.tensors):
        label = f"{where}, tensor {k} '{t.name}'"
        if t.type not in TENSOR_TYPES:
            raise ModelFormatError(f"{label}: unknown tensor type {t.type}")
        type_name, width = TENSOR_TYPES[t.type]
        dims = ",".join(map(str, t.shape))
        if len(t.shape) > MAX_RANK:
            raise ModelFormatError(f"{label}: shape ({dims}) has {len(t.shape)} dimensions, at most {MAX_RANK}")
        if any(d < 0 for d in t.shape):
            raise ModelFormatError(f"{label}: shape ({dims}) has a negative dimension")
        elements = math.prod(t.shape)
        need = (elements + 1) // 2 if width < 0 else elements * width
        if need > MAX_TENSOR_BYTES:
            raise ModelFormatError(f"{label}: shape ({dims}) {type_name.lower()} needs {need:,} bytes, more than "
                                   f"{MAX_TENSOR_BYTES:,}")
        held = buffers[t.buffer]
        if held and width and held != need:
            raise ModelFormatError(f"{label}: buffer {t.buffer} holds {held:,} bytes, its shape ({dims}) "
                                   f"{type_name.lower()} needs {need:,}")
        if not held:
            computed += need
        if t.scales > 1 or t.zero_points > 1:
            if t.zero_points != t.scales:
                raise ModelFormatError(f"{label}: {t.scales} scales and {t.zero_points} zero points")
            axis = t.quantized_dimension if 0 <= t.quantized_dimension < len(t.shape) else None
            if (t.shape[axis] != t.scales) if axis is not None else t.scales not in t.shape:
                # an axis out of range is taken where a dimension matches: old converters wrote 3 on biases
                raise ModelFormatError(f"{label}: {t.scales} scales along dimension {t.quantized_dimension} of "
                                       f"shape ({dims})")
    if computed > MAX_TENSOR_BYTES:
        raise ModelFormatError(f"{where}: its computed tensors need {computed:,} bytes, more than {MAX_TENSOR_BYTES:,}")
