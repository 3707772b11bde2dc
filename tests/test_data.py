"""Data loading, and bad data through the CLI: one-line error naming file and line, exit 2, no file touched."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import refusals

from pipeline import build, build_args, stages
from pipeline.model import data


def test_seed_is_the_lesson():
    d = data.seed()
    assert d.x[:, 0].tolist() == [-1, 0, 1, 2, 3, 4]
    assert d.y[:, 0].tolist() == [-3, -1, 1, 3, 5, 7]
    assert d.default_range == (-1.0, 12.0)


def test_csv_with_header_comments_and_two_outputs(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("# made by hand\na,b,s,d\n1,2,3,-1\n\n2,5,7,-3\n4,4,8,0\n")
    d = data.load_csv(path, outputs=2)
    assert d.names == ("a", "b", "s", "d")
    assert d.x.tolist() == [[1, 2], [2, 5], [4, 4]]
    assert d.y.tolist() == [[3, -1], [7, -3], [8, 0]]
    assert d.default_range == (1.0, 5.0)


def test_csv_without_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("-1,-3\n0,-1\n1e0,1\n")
    d = data.load_csv(path)
    assert d.names == ("x", "y") and d.x.dtype == np.float32 and d.x[:, 0].tolist() == [-1, 0, 1]


BAD = [
    ("missing", None, r"no such file"),
    ("non-numeric", "x,y\n1,2\n2,abc\n", r":3: column 2: 'abc' is not a number"),
    ("nan", "1,2\nnan,3\n", r":2: column 1: 'nan' is not a finite number"),
    ("inf", "1,2\n2,-inf\n", r":2: column 2: '-inf' is not a finite number"),
    ("ragged", "x,y\n1,2\n2,3,4\n", r":3: 3 column\(s\), expected 2"),
    ("one row", "x,y\n1,2\n", r"1 data row\(s\); need at least 2"),
    ("empty", "", r"empty file"),
    ("only blank lines", "\n\n  \n", r"empty file"),
    ("one column", "1\n2\n3\n", r":1: 1 column\(s\); need at least 2"),
    ("too big for float32", "1,2\n1e39,3\n", r":2: column 1: 1e\+39 does not fit a 32-bit float"),
    ("binary", b"\xff\xfe\x00garbage", r":1: not a UTF-8 text file"),
    # float() takes these; the CSV format does not.
    ("digit separator", "1,2\n1_0,3\n", r":2: column 1: '1_0' is not a number \(plain decimal"),
    ("Arabic-Indic digits", "1,2\n\u0661\u0662,3\n", r":2: column 1: '\u0661\u0662' is not a number"),
    ("fullwidth digit", "1,2\n3,\uff14\n", r":2: column 2: '\uff14' is not a number"),
    ("no-break space", "1,2\n3,\u00a04\n", r":2: column 2: '\\xa04' is not a number"),
    ("spaced inf", "1,2\n inf,3\n", r":2: column 1: 'inf' is not a finite number"),
    ("Infinity word", "1,2\n2,-Infinity\n", r":2: column 2: '-Infinity' is not a finite number"),
    ("hex", "1,2\n0x10,3\n", r":2: column 1: '0x10' is not a number"),
    ("bare exponent", "1,2\n1e,3\n", r":2: column 1: '1e' is not a number"),
    ("lone dot", "1,2\n.,3\n", r":2: column 1: '.' is not a number"),
    ("bad first row", "1_0,2\n3,4\n", r":1: column 1: '1_0' is not a number"),
    ("bare carriage returns", "1,2\r3,4\r", r":1: lines end in a bare carriage return"),
    ("constant input", "x,y\n3,1\n3,2\n", r"every input is 3 \(column 1 \(x\) constant\).*--input-range LO HI"),
    ("input of 1e30", "x,y\n1,2\n-1e30,3\n", r":3: column 1 \(x\): input -1e\+30 is too large"),
]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_data_is_refused_and_nothing_changes(name, content, message, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "model_info.h").write_text("previous build\n")
    before = _digest(out)
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    status = build.main(["--data", str(path), "--out", str(out), "--report-dir", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and str(path) in err
    import re
    assert re.search(message, err), err
    assert "--input-range" not in err or "give --input-range" in err
    assert _digest(out) == before
    assert not (tmp_path / "report").exists()


def test_plain_decimal_forms_are_read(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n+1.,-.5e+1\n 2 ,\t3E-1\n-0,1e2\r\n")
    d = data.load_csv(path)
    assert d.x[:, 0].tolist() == [1, 2, 0] and d.y[:, 0].tolist() == [-5, np.float32(0.3), 100]
    assert d.lines.tolist() == [2, 3, 4]


def test_blocks_read_as_numpy_reads_them_and_keep_line_numbers(tmp_path, monkeypatch):
    """Block boundaries in the middle of lines, comments and blank lines in some blocks only."""
    rng = np.random.default_rng(3)
    table = rng.normal(size=(500, 3)).astype(np.float32)
    lines = ["a,b,c"]
    expected_lines = []
    for k, row in enumerate(table):
        if k % 97 == 5:
            lines += ["# note", ""]
        lines.append(",".join(f"{v:.9g}" for v in row))
        expected_lines.append(len(lines))
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines))  # no final newline
    monkeypatch.setattr(data, "_CHUNK_BYTES", 301)
    d = data.load_csv(path)
    np.testing.assert_array_equal(np.hstack([d.x, d.y]), table)
    assert d.lines.tolist() == expected_lines
    lines[400] = lines[400].replace(",", ",1_0,", 1).rsplit(",", 1)[0]
    path.write_text("\n".join(lines))
    with pytest.raises(data.DataError, match=rf":401: column 2: '1_0' is not a number"):
        data.load_csv(path)


def test_read_memory_is_the_data_as_float32(tmp_path):
    """300,000 rows: the float32 table is 2.4 MB; the reader may add its blocks, not a Python float per cell."""
    rows = 300_000
    rng = np.random.default_rng(0)
    path = tmp_path / "big.csv"
    np.savetxt(path, rng.uniform(-5, 5, size=(rows, 2)), fmt="%.6f", delimiter=",", header="x,y", comments="")
    tracemalloc.start()
    d = data.load_csv(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(d.x) == rows and d.lines[-1] == rows + 1
    table_bytes = rows * 2 * 4
    assert peak < 3 * table_bytes + 4 * data._CHUNK_BYTES, peak


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_file_that_is_not_regular_is_refused_at_once(kind, tmp_path):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(data.DataError, data.load_csv, path).value))
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock an open() of the FIFO, so the test can end and fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail(f"load_csv blocked on {kind}")
    assert re.fullmatch(rf"{re.escape(str(path))}: not a regular file \(a device, FIFO or socket\); give a CSV file",
                        str(outcome[0]))


def test_a_directory_as_data_is_refused(tmp_path, capsys):
    assert build.main(["--data", str(tmp_path), "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: is a directory, not a CSV file\n"


def test_sample_rows_is_bounded_and_spans_the_data():
    assert data.sample_rows(5, 200).tolist() == [0, 1, 2, 3, 4]
    rows = data.sample_rows(1_000_000, 200)
    assert len(rows) == 200 and rows[0] == 0 and rows[-1] == 999_999 and np.all(np.diff(rows) > 0)


def _range_args(*values: float) -> argparse.Namespace:
    return argparse.Namespace(input_range=list(values) if values else None)


def test_a_given_range_must_contain_the_data_and_names_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n# c\n1,2\n5,3\n")
    d = data.load_csv(path)
    assert stages._input_range(_range_args(), d) == (1.0, 5.0)
    assert stages._input_range(_range_args(0, 9), d) == (0.0, 9.0)
    with pytest.raises(build_args.UsageError, match=rf"--input-range 0 3 does not contain the data: {re.escape(str(path))}:4 "
                                               r"has input 1 = 5 \(its row: 5\)"):
        stages._input_range(_range_args(0, 3), d)


def test_constant_data_builds_with_a_given_range(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("3,1\n3,2\n")
    d = data.load_csv(path)
    with pytest.raises(data.DataError, match="every input is 3"):
        stages._input_range(_range_args(), d)
    assert stages._input_range(_range_args(0, 4), d) == (0.0, 4.0)


BAD_ARGUMENTS = [
    (["--input-range", "0", "3"], r"does not contain the data: seed lesson \(y = 2x - 1\): row 1 has input 1 = -1 \(its row: -1\)"),
    (["--input-range", "5", "5"], r"need LO < HI"),
    (["--input-range", "0", "1e30"], r"need LO < HI, both within ±1e\+30"),
    (["--seed", "-1"], r"--seed -1: must be 0..4294967295"),
    (["--seed", str(2**32)], r"--seed 4294967296: must be 0..4294967295"),
    (["--tolerance-lsb", "0"], r"--tolerance-lsb must be > 0"),
    (["--tolerance-lsb", "1e7"], r"--tolerance-lsb must be > 0 \(and at most 1e6"),
    (["--hidden", ""], r"--hidden '': expected sizes like 16,16"),
    (["--hidden", "1_6"], r"--hidden '1_6': expected sizes like 16,16"),
    (["--hidden", "16,,16"], r"--hidden '16,,16': expected sizes"),
    (["--hidden", ",".join(["2"] * 9)], r"at most 8 hidden layers"),
    (["--outputs", "2"], r"--outputs 2 needs --data"),
    (["--activation", "relu"], r"--activation relu applies to hidden layers"),
    (["--trainer", "tape", "--optimizer", "adam"], r"--trainer tape is the lesson's plain gradient step"),
    (["--hidden", "16,x"], r"--hidden '16,x'"),
    (["--hidden", "0"], r"each size must be 1..256"),
    (["--per-channel"], r"--per-channel is refused for --engine tflm.*--engine aot"),
    (["--trainer", "tape", "--model", "two-layer"], r"--trainer tape trains the lesson's single neuron"),
    (["--epochs", "0"], r"--epochs must be"),
    (["--lr", "-1"], r"--lr must be"),
    (["--outputs", "0"], r"--outputs must be 1..256"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[" ".join(a[0]) for a in BAD_ARGUMENTS])
def test_bad_arguments_are_refused(args, message, tmp_path, capsys):
    status = build.main([*args, "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


UNPARSABLE = [
    (["--seed", "x"], r"argument --seed: 'x' is not a whole number"),
    (["--epochs", "1_0"], r"argument --epochs: '1_0' is not a whole number"),
    (["--epochs", "\u0661\u0660"], r"argument --epochs: '\u0661\u0660' is not a whole number"),
    (["--lr", "nan"], r"argument --lr: 'nan' is not a finite decimal number"),
    (["--lr", "inf"], r"argument --lr: 'inf' is not a finite decimal number"),
    (["--tolerance-lsb", "Infinity"], r"argument --tolerance-lsb: 'Infinity' is not a finite"),
    (["--input-range", "nan", "1"], r"argument --input-range: 'nan' is not a finite decimal number"),
    (["--input-range", "0", "1e400"], r"argument --input-range: '1e400' is beyond a 64-bit float"),
    (["--input-range", "0"], r"argument --input-range: expected 2 arguments"),
    (["--model", "big"], r"argument --model: invalid choice: 'big'"),
    (["--bogus"], r"unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args,message", UNPARSABLE, ids=[" ".join(a[0]) for a in UNPARSABLE])
def test_unparsable_arguments_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        build.parse_args(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and re.search(message, err), err
    assert re.fullmatch(r"error: .* \(see --help\)\n", err), err


def test_bad_arguments_are_refused_before_tensorflow_is_imported():
    """In a fresh interpreter: a refusal costs no TensorFlow import (seconds, and a traceback if it failed there)."""
    cases = [a for a, _ in BAD_ARGUMENTS] + [["--data", "/dev/zero"]]
    refusals.assert_refused_before_tensorflow(cases)


def test_a_wide_row_outside_the_range_is_named_by_its_line_and_shown_short(tmp_path):
    """714 values in a row: the refusal names the file's line and the input, and shows the row by its
    first four values and its count, not whole."""
    path = tmp_path / "wide.csv"
    rows = np.zeros((3, 715))
    rows[2, 500] = 9.0
    np.savetxt(path, rows, delimiter=",", fmt="%g")
    d = data.load_csv(path)
    with pytest.raises(build_args.UsageError) as refused:
        stages._input_range(_range_args(-1, 1), d)
    assert str(refused.value) == (f"--input-range -1 1 does not contain the data: {path}:3 has input 501 = 9 (its row: "
                                  "0, 0, 0, 0, ... (714 values))")
