"""The sweep's rows: seeded random rows made again row by row, what model.json ships of a wide
model (at least 64 rows), the board's rows kept, and float queries sent once per float32 value."""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from pipeline.device import deployed
from pipeline.device.verify import float_queries
from pipeline.int8 import sweep


def test_random_rows_are_the_same_however_they_are_cut():
    whole = sweep.random_rows(1, 37, 0, 50)
    assert whole.shape == (50, 37) and whole.dtype == np.int8
    assert whole.min() == -128 and whole.max() == 127
    assert np.array_equal(sweep.random_rows(1, 37, 20, 7), whole[20:27])
    assert not np.array_equal(sweep.random_rows(2, 37, 0, 50), whole)
    rows = sweep.Sweep(37, 1, 50, np.ones((3, 37)))
    assert np.array_equal(np.concatenate([chunk for _, chunk in rows.chunks(8)]), rows.rows())
    assert [start for start, _ in rows.chunks(8)] == list(range(0, 53, 8))
    assert np.array_equal(rows.rows(48, 51), np.vstack([whole[48:], np.ones((1, 37))]))


def test_random_rows_are_pinned_to_their_generator():
    """PCG64 seeded by (seed, row): a stream NumPy keeps stable, so a model.json written on one machine
    names the same rows on another. These are its first bytes."""
    assert sweep.random_rows(1, 8, 0, 1).tolist() == [[-1, -28, 34, 121, -13, -67, 6, -125]]


def test_a_wide_model_ships_at_least_64_rows_half_of_them_data():
    width = 1960  # micro_speech's input: 65,536 codes would be 33 rows
    codes = np.vstack([sweep.random_rows(1, width, 0, 512), np.full((300, width), 5, np.int8)])
    floats = np.arange(812 * 2, dtype=np.float64).reshape(812, 2)
    meta = sweep.shipped(codes, floats, random_seed=1, random_count=512)
    rows = sweep.Sweep.from_json(json.loads(json.dumps(meta)), width)
    assert len(rows) == 64 and rows.random_count == 32 and len(rows.listed) == 32
    assert meta["random"] == {"seed": 1, "rows": 32} and len(meta["codes"]) == 32
    expected = np.vstack([codes[:32], codes[512:544]])
    assert np.array_equal(rows.rows(), expected)
    assert np.array_equal(np.array(meta["float"]), np.vstack([floats[:32], floats[512:544]]))
    alone = sweep.Sweep.from_json(sweep.shipped(codes[:512], floats[:512], 1, 512), width)
    assert len(alone) == 64 and alone.random_count == 64


def test_board_rows_are_shipped_wherever_they_were_in_the_sweep():
    width = 714
    codes = sweep.random_rows(1, width, 0, 512)
    board = {3: np.array([1, 2], np.int8), 400: np.array([-5, 7], np.int8)}
    meta = sweep.shipped(codes, None, random_seed=1, random_count=512, board=board)
    rows = sweep.Sweep.from_json(meta, width)
    shipped = rows.rows()
    assert meta["board"]["outputs"] == [[1, 2], [-5, 7]]
    for row, position in zip(sorted(board), meta["board"]["rows"]):
        assert np.array_equal(shipped[position], codes[row])
    assert meta["board"]["rows"][1] == len(shipped) - 1  # row 400 was beyond the 91 shipped: listed after them


def test_a_one_input_sweep_is_every_code_and_not_listed():
    codes = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    meta = sweep.shipped(codes, np.zeros((256, 1)))
    assert meta["codes"] == sweep.ALL_CODES and "random" not in meta
    assert np.array_equal(sweep.Sweep.from_json(meta, 1).rows(), codes)


def test_bad_sweeps_are_refused_by_what_is_wrong():
    import pytest
    for bad, message in (({"codes": [[999]]}, "outside -128..127"), ({"codes": "all"}, "one-input model"),
                         ({"codes": [], "random": {"seed": -1, "rows": 3}}, "seed >= 0")):
        with pytest.raises(ValueError, match=message):
            sweep.Sweep.from_json(bad, 1 if bad["codes"] != "all" else 2)


def test_a_value_is_queried_once_whatever_its_spelling():
    """A probe written in float64 and the range's end that is the same float32 are one query."""
    model = deployed.load()
    lo, hi = model.input_range
    spelled = np.array([[float(np.float32(0.1))], [0.1], [lo], [hi], [np.nextafter(hi, 0.0)]])
    queries = float_queries(dataclasses.replace(model, probes=spelled))
    as_sent = [np.float32(q[0]).tobytes() for q in queries]
    assert len(as_sent) == len(set(as_sent))
    assert len(queries) == 4  # 0.1 once, lo, hi (its float64 neighbour is the same float32), one past the range
