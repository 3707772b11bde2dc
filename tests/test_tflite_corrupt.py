"""Corrupt .tflite files: the reader refuses each with one line (ModelFormatError) or reads it, never
another exception, and tflite-micro's runtime meets a model that passed the structure check first
in a child process, so a crash there is one line and not the end of this process.

The corpus is structure-aware: valid int8 models written here (FULLY_CONNECTED + SOFTMAX, CONV_2D,
DEPTHWISE_CONV_2D, pooling, ADD, RESHAPE with its options vector), mutated by random byte changes,
cuts, and large values written where the verifier reads an offset, a vector length or a vtable
entry. Seeded; `python tests/test_tflite_corrupt.py [COUNT]` runs the longer fuzz and prints what
it found.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import op_models  # noqa: E402
import tflite_writer as w  # noqa: E402
from pipeline.int8 import oracle, tflite_model, tflite_verify  # noqa: E402
from pipeline.int8.tflite_verify import ModelFormatError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
needs_tflm = pytest.mark.skipif(not oracle.tflm_available(), reason="tflite-micro wheel missing (Linux x86_64 only)")


def corpus() -> dict[str, bytes]:
    """Valid int8 models of every structure the reader follows."""
    rng = np.random.default_rng(7)
    dense = w.dense_chain([(rng.integers(-127, 128, (3, 2)), rng.integers(-99, 99, 3), 0.05, -3, "RELU")],
                                    0.02, 1, classes=True)
    reshape = w.write([w.tensor("x", (1, 2, 3), 0.1, 0), w.tensor("shape", (2,), None, 0, np.array([1, 6]), "INT32"),
                       w.tensor("y", (1, 6), 0.1, 0)], [_reshape_with_options(0, 1, 2, (1, 6))], [0], [2])
    return {"dense-softmax": dense,
            "conv": op_models.conv(1, 4, 4, 2, 3, kernel=(3, 3)),
            "depthwise": op_models.conv(2, 4, 3, 2, 4, kernel=(2, 2), depthwise=True),
            "avg-pool": op_models.pool("AVERAGE_POOL_2D", 3, 4, 4, 2, (2, 2), (2, 2), "VALID"),
            "add": op_models.elementwise("ADD", 4, (1, 2, 2, 3), "constant", constant_shape=(1, 1, 1, 3)),
            "reshape": reshape}


def _reshape_with_options(x: int, shape: int, y: int, new_shape: tuple[int, ...]) -> w.Op:
    """RESHAPE with its ReshapeOptions.new_shape vector: an options table holding an offset."""
    import tflite

    def options(b) -> int:
        tflite.ReshapeOptionsStartNewShapeVector(b, len(new_shape))
        for d in reversed(new_shape):
            b.PrependInt32(d)
        vector = b.EndVector()
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, vector)
        return tflite.ReshapeOptionsEnd(b)
    return w.Op(tflite.BuiltinOperator.RESHAPE, (x, shape), (y,), tflite.BuiltinOptions.ReshapeOptions, options)


class _Tracing(tflite_verify._Bytes):
    """Records where the verifier reads an offset, a length or a vtable entry: the mutation targets."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.read: list[tuple[int, str]] = []

    def unpack(self, fmt: str, offset: int, where: str, what: str) -> int | float:
        self.read.append((offset, fmt))
        return super().unpack(fmt, offset, where, what)


def targets(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of every uoffset, vector length, soffset and vtable entry in a valid file."""
    buf = _Tracing(data)
    tflite_verify._check(buf)
    return sorted({(o, f) for o, f in buf.read if f in ("<I", "<i", "<H")})


def mutants(models: dict[str, bytes], count: int, seed: int):
    """(label, bytes): seeded mutants, a quarter each of random byte changes, large values at traced
    offsets, vtable entries pointed elsewhere, and cuts."""
    rng = np.random.default_rng(seed)
    names = sorted(models)
    traced = {name: targets(models[name]) for name in names}
    for k in range(count):
        name = names[k % len(names)]
        data = bytearray(models[name])
        kind = k // len(names) % 4
        if kind == 0:
            for _ in range(int(rng.integers(1, 9))):
                at = int(rng.integers(0, len(data)))
                data[at] = int(rng.integers(0, 256))
            label = "bytes"
        elif kind in (1, 2):
            at, fmt = traced[name][int(rng.integers(0, len(traced[name])))]
            if fmt == "<H":
                value = int(rng.choice([0xFFFF, 0xFFFE, 4, 6, int(rng.integers(0, 0x10000)), len(data) & 0xFFFF]))
            elif fmt == "<i":
                value = int(rng.choice([-(1 << 31), (1 << 31) - 1, -len(data), at + 2, -4, int(rng.integers(-4096, 4096))]))
            else:
                value = int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x3FFFFFFF, len(data), len(data) - at, 0,
                                        int(rng.integers(0, 2 * len(data)))]))
            struct.pack_into(fmt, data, at, value)
            label = f"{fmt} {value} at {at}"
        else:
            cut = int(rng.integers(0, len(data)))
            data = data[:cut]
            label = f"cut at {cut}"
        yield f"{name}: {label}", bytes(data)


def outcome(data: bytes) -> str:
    """'read' or 'refused: <line>'; any other exception is a finding and propagates. The accessors
    run without read()'s safety net, so a gap in the verifier shows as their struct.error."""
    try:
        tflite_verify.verify(data)
        tflite_model._parse(data)
    except ModelFormatError as error:
        message = str(error)
        assert message and "\n" not in message and not message.startswith("not a readable"), message
        return f"refused: {message}"
    return "read"


def test_the_corpus_is_read_and_every_model_runs():
    for name, data in corpus().items():
        assert outcome(data) == "read", name
        assert len(targets(data)) > 20, name


def test_every_cut_of_a_small_model_is_one_line():
    data = corpus()["dense-softmax"]
    refused = [outcome(data[:n]) for n in range(len(data))]
    assert all(r.startswith("refused: ") for r in refused)
    assert refused[3] == "refused: not a TFLite flatbuffer: 3 bytes, too short for its header"
    assert refused[len(data) - 1].startswith("refused: offset ")
    assert "runs past the end of the file" in refused[len(data) - 1] or "outside the file" in refused[len(data) - 1]


def _field_offset(data: bytes, table: int, slot: int) -> int:
    vtable = table - struct.unpack_from("<i", data, table)[0]
    return table + struct.unpack_from("<H", data, vtable + 4 + 2 * slot)[0]


def _tensor_table(data: bytes, index: int) -> int:
    """Where tensor `index` of subgraph 0 starts (through offsets of the valid file)."""
    root = struct.unpack_from("<I", data, 0)[0]
    at = _field_offset(data, root, 2)
    subgraphs = at + struct.unpack_from("<I", data, at)[0]
    graph = subgraphs + 4 + struct.unpack_from("<I", data, subgraphs + 4)[0]
    at = _field_offset(data, graph, 0)
    tensors = at + struct.unpack_from("<I", data, at)[0]
    element = tensors + 4 + 4 * index
    return element + struct.unpack_from("<I", data, element)[0]


def test_one_changed_byte_of_a_buffer_index_is_named():
    """The issue's case on a model made here: a byte of tensor 3's buffer index set to 0x26 (TFLM
    followed it out of the buffer table and crashed)."""
    data = bytearray(corpus()["dense-softmax"])
    at = _field_offset(data, _tensor_table(data, 3), 2)
    data[at + 2] = 0x26
    table = _tensor_table(bytes(data), 3)
    assert outcome(bytes(data)) == (f"refused: offset {table} (subgraph 0, tensor 3 'dense0/output'): buffer "
                                    f"{0x260000 + 4}, the model has 6")


def test_a_buffer_of_the_wrong_size_for_its_shape_is_named():
    weights = np.arange(-50, 50, dtype=np.int8).reshape(1, 100)
    data = w.write([w.tensor("x", (1, 72), 0.1, 0), w.tensor("conv/weights", (8, 3, 3, 1), 0.01, 0, weights),
                    w.tensor("y", (1, 72), 0.1, 0)], [w.elementwise("ADD", 0, 1, 2)], [0], [2])
    assert outcome(data) == ("refused: subgraph 0, tensor 1 'conv/weights': buffer 2 holds 100 bytes, its shape "
                             "(8,3,3,1) int8 needs 72")


def test_shapes_indices_and_quantization_are_checked():
    def one(shape, zps=0, scale=0.1, dim=0):
        return outcome(w.write([w.tensor("x", shape, scale, zps, quantized_dimension=dim), w.tensor("y", (1, 2), 0.1, 0)],
                               [w.pool_2d("MAX_POOL_2D", 0, 1, (1, 1))], [0], [1]))
    assert one((1, -2)) == "refused: subgraph 0, tensor 0 'x': shape (1,-2) has a negative dimension"
    assert one((1 << 20, 1 << 10)) == ("refused: subgraph 0, tensor 0 'x': shape (1048576,1024) int8 needs "
                                       "1,073,741,824 bytes, more than 268,435,456")
    assert one((1, 2), zps=[0, 0, 0], scale=[0.1, 0.2]) == "refused: subgraph 0, tensor 0 'x': 2 scales and 3 zero points"
    assert one((1, 2), zps=[0, 0, 0], scale=[0.1, 0.2, 0.3], dim=1) == (
        "refused: subgraph 0, tensor 0 'x': 3 scales along dimension 1 of shape (1,2)")
    bad_op = w.write([w.tensor("x", (1, 2), 0.1, 0), w.tensor("y", (1, 2), 0.1, 0)],
                     [w.pool_2d("MAX_POOL_2D", 0, 5, (1, 1))], [0], [1])
    assert outcome(bad_op).startswith("refused: offset ")
    assert outcome(bad_op).endswith("(subgraph 0, operator 0): output tensor index 5 is out of range (the subgraph has 2 tensors)")


def test_mutants_are_read_or_refused_in_one_line():
    """About 2,400 seeded mutants through the verifier and the schema accessors: no other exception."""
    tally = Counter(outcome(data).split(":")[0] for _, data in mutants(corpus(), 2400, seed=11))
    assert tally["refused"] > 1500 and tally["read"] > 100, tally


@needs_tflm
def test_mutants_that_pass_the_check_meet_tflm_in_a_child_first():
    """Every verified mutant goes to the runtime through the child process: it runs, or its
    refusal or crash is one line; this process lives on."""
    models = corpus()
    seen = Counter()
    for label, data in mutants(models, 3000, seed=5):
        if outcome(data) != "read" or data in models.values() or sum(seen.values()) >= 36:
            continue
        try:
            oracle.first_contact(tflite_model.read(data), data)
            seen["ran"] += 1
        except oracle.RuntimeCrash as error:
            assert "\n" not in str(error), label
            assert "SIGSEGV" not in str(error) and "SIGABRT" not in str(error), f"{label}: {error}"
            seen["refused"] += 1
    assert sum(seen.values()) == 36, seen


@needs_tflm
def test_a_runtime_crash_in_the_child_is_one_line():
    """A child killed by a signal becomes RuntimeCrash naming the signal (the child is made to
    crash the way a C++ fault kills it), and the model is not marked as tried."""
    data = corpus()["conv"]
    parsed = tflite_model.read(data)
    child = oracle._CHILD
    try:
        oracle._CHILD = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
        with pytest.raises(oracle.RuntimeCrash) as raised:
            oracle.first_contact(parsed, data + b"")
    finally:
        oracle._CHILD = child
    digest = parsed.sha256[:12]
    assert str(raised.value) == f"the model (SHA-256 {digest}): the tflite-micro runtime crashed reading it (SIGSEGV), in a child process"


def test_the_build_refuses_a_corrupt_tflite_in_one_line_and_writes_nothing(tmp_path):
    data = bytearray(corpus()["dense-softmax"])
    at = _field_offset(data, _tensor_table(data, 3), 2)
    data[at + 2] = 0x26
    path = tmp_path / "bad.tflite"
    path.write_bytes(bytes(data))
    done = subprocess.run([sys.executable, "-m", "pipeline.build", "--tflite", str(path), "--out", str(tmp_path / "m"),
                           "--report-dir", str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: --tflite {path}: offset {_tensor_table(bytes(data), 3)} (subgraph 0, "
                                        f"tensor 3 'dense0/output'): buffer {0x260000 + 4}, the model has 6"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]


def fuzz(count: int, seed: int = 1, oracle_every: int = 1, keep: Path | None = None) -> Counter:
    """The longer run: count mutants through the reader, and every verified one (oracle_every: each
    n-th) through TFLM in a child. Prints each finding (and writes its bytes into keep); returns the tally."""
    models = corpus()
    tally: Counter = Counter()
    started = time.monotonic()
    for n, (label, data) in enumerate(mutants(models, count, seed)):
        try:
            result = outcome(data)
        except Exception as error:  # noqa: BLE001 - a finding
            tally["reader finding"] += 1
            print(f"READER FINDING {n} {label}: {type(error).__name__}: {error}", flush=True)
            if keep is not None:
                (keep / f"reader-{n}.tflite").write_bytes(data)
            continue
        tally[result.split(":")[0]] += 1
        if result == "read" and oracle.tflm_available() and data not in models.values() and n % oracle_every == 0:
            try:
                oracle.first_contact(tflite_model.read(data), data)
                tally["tflm ran"] += 1
            except oracle.RuntimeCrash as error:
                crashed = "crashed" in str(error) or "ran over" in str(error)
                tally["tflm crashed" if crashed else "tflm refused"] += 1
                if crashed:
                    print(f"TFLM FINDING {n} {label}: {error}", flush=True)
                    if keep is not None:
                        (keep / f"tflm-{n}.tflite").write_bytes(data)
    print(f"{count} executions in {time.monotonic() - started:.0f} s: {dict(tally)}")
    return tally


if __name__ == "__main__":
    # python tests/test_tflite_corrupt.py [COUNT [SEED [FOLDER for the findings' bytes]]]
    fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, int(sys.argv[2]) if len(sys.argv) > 2 else 1,
         keep=Path(sys.argv[3]) if len(sys.argv) > 3 else None)
