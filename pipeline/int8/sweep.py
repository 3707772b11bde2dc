"""The input rows the build's check sweeps and verify sends to the device again.

A one-input model's sweep is its every code. A wider model's is seeded random code rows and
the data's own rows. model.json ships what verify sends: the random rows as their seed and
count (regenerated here, row by row, so a 27,648-value image costs no bytes in the file and
no memory beyond the rows being sent), the others listed. Each random row comes from its own
PCG64 stream, seeded by (seed, row): NumPy keeps bit generators' streams the same across
versions, so the rows are the same on every machine and any row can be made alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

ALL_CODES = "all"
"""model.json's codes for a one-input model: every code -128..127 in order, derived, not listed."""
SHIPPED_CODES = 65536
"""model.json lists about this many codes for verify at most (a 714-input model: 91 rows)..."""
MIN_SHIPPED_ROWS = 64
"""...but never fewer than this many rows, however wide the model."""


def random_rows(seed: int, width: int, start: int, count: int) -> np.ndarray:
    """int8 rows start..start+count-1 of the seeded random sweep, [count, width]."""
    words = math.ceil(width / 8)
    rows = np.empty((count, width), dtype=np.int8)
    for k in range(count):
        stream = np.random.PCG64(np.random.SeedSequence([seed, start + k]))
        rows[k] = stream.random_raw(words).astype("<u8").view(np.int8)[:width]
    return rows


def shipped_rows(width: int) -> int:
    """How many rows model.json carries for a model of width inputs."""
    return max(MIN_SHIPPED_ROWS, SHIPPED_CODES // max(width, 1))


@dataclass(frozen=True)
class Sweep:
    """Rows of int8 input codes: random_count seeded random rows, then the listed ones."""

    width: int
    random_seed: int = 0
    random_count: int = 0
    listed: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int8))
    """int8 [n, width]: rows given explicitly (data rows, every code of one input, extra rows)."""

    def __post_init__(self) -> None:
        listed = np.asarray(self.listed, dtype=np.int8).reshape(-1, self.width)
        object.__setattr__(self, "listed", listed)
        if self.random_count < 0 or self.width < 1:
            raise ValueError(f"a sweep of {self.random_count} random rows of {self.width} inputs")

    def __len__(self) -> int:
        return self.random_count + len(self.listed)

    def rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows start..stop-1 (all by default), [n, width]."""
        stop = len(self) if stop is None else min(stop, len(self))
        parts = []
        if start < self.random_count:
            parts.append(random_rows(self.random_seed, self.width, start, min(stop, self.random_count) - start))
        if stop > self.random_count:
            parts.append(self.listed[max(start - self.random_count, 0):stop - self.random_count])
        return np.concatenate(parts) if parts else np.zeros((0, self.width), dtype=np.int8)

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row index, rows) of at most size rows each, in order: what verify sends at a time."""
        for start in range(0, len(self), size):
            yield start, self.rows(start, start + size)

    @property
    def every_code(self) -> bool:
        return (self.width == 1 and self.random_count == 0
                and np.array_equal(self.listed[:, 0], np.arange(-128, 128)))

    def to_json(self) -> dict[str, Any]:
        """model.json's `codes` (listed rows, or ALL_CODES) and, with random rows, `random`."""
        if self.every_code:
            return {"codes": ALL_CODES}
        out: dict[str, Any] = {"codes": self.listed.tolist()}
        if self.random_count:
            out["random"] = {"seed": self.random_seed, "rows": self.random_count}
        return out

    @classmethod
    def from_json(cls, sweep: dict[str, Any], width: int) -> Sweep:
        """to_json's fields back; raises ValueError naming what is wrong."""
        codes = sweep["codes"]
        if codes == ALL_CODES:
            if width != 1:
                raise ValueError(f'sweep codes "{ALL_CODES}" need a one-input model, not {width} inputs')
            return every_code()
        listed = np.asarray(codes, dtype=np.int64).reshape(-1, width) if len(codes) else np.zeros((0, width))
        if np.any((listed < -128) | (listed > 127)):
            raise ValueError("a sweep code outside -128..127")
        random = sweep.get("random") or {"seed": 0, "rows": 0}
        seed, count = random["seed"], random["rows"]
        if not (isinstance(seed, int) and isinstance(count, int) and seed >= 0 and 0 <= count <= 1 << 20):
            raise ValueError(f"sweep random {random!r}: want a seed >= 0 and 0..{1 << 20} rows")
        return cls(width, seed, count, listed.astype(np.int8))


def every_code() -> Sweep:
    """A one-input model's sweep: -128..127."""
    return Sweep(1, listed=np.arange(-128, 128, dtype=np.int8).reshape(-1, 1))


def shipped(codes: np.ndarray, floats: np.ndarray | None, random_seed: int = 0, random_count: int = 0,
            board: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """model.json's `sweep` from the check's whole sweep: codes [n, width], its first random_count
    rows made from random_seed (random_rows), the rest listed; floats [n, outputs], the float
    model's answers (or None); board, rows whose answers the board's TFLM library rounds apart
    from the runtime's, by row index, with the board's output codes.

    A wide model ships shipped_rows(width) rows: its data rows first up to half of them, random
    rows for the rest; every row of board goes too, listed after them. The board's rows are then
    named by their index in what is shipped."""
    codes = np.asarray(codes, dtype=np.int8)
    width = codes.shape[1]
    board = board or {}
    every = width == 1 and random_count == 0 and np.array_equal(codes[:, 0], np.arange(-128, 128))
    if every:
        index = list(range(len(codes)))
        sweep = every_code()
    else:
        budget = shipped_rows(width)
        data_count = len(codes) - random_count
        data = min(data_count, budget // 2 if random_count else budget)
        random = min(random_count, budget - data)
        data = min(data_count, budget - random)
        index = list(range(random)) + list(range(random_count, random_count + data))
        taken = set(index)
        index += [row for row in sorted(board) if row not in taken]
        sweep = Sweep(width, random_seed, random, codes[index[random:]])
    out = sweep.to_json()
    out["float"] = None if floats is None else [[round(float(v), 6) for v in floats[row]] for row in index]
    if board:
        position = {row: k for k, row in enumerate(index)}
        out["board"] = {"rows": [position[row] for row in sorted(board)],
                        "outputs": [np.asarray(board[row]).astype(int).tolist() for row in sorted(board)]}
    return out
