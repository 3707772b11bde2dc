"""Data loading, and bad data through the CLI: one-line error naming file and line, exit 2, no file touched."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline import build, data


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
    ("too big for float32", "1,2\n1e39,3\n", r":2: a value does not fit a 32-bit float"),
    ("binary", b"\xff\xfe\x00garbage", r"not a UTF-8 text file"),
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
    assert _digest(out) == before
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("args,message", [
    (["--input-range", "0", "3"], r"does not contain the data: row 1 has input \[-1.0\]"),
    (["--input-range", "5", "5"], r"need finite LO < HI"),
    (["--hidden", "16,x"], r"--hidden '16,x'"),
    (["--hidden", "0"], r"each size must be 1..256"),
    (["--per-channel"], r"--per-channel is refused for --engine tflm.*--engine aot"),
    (["--trainer", "tape", "--model", "two-layer"], r"--trainer tape trains the lesson's single neuron"),
    (["--epochs", "0"], r"--epochs must be"),
    (["--lr", "-1"], r"--lr must be"),
    (["--outputs", "0"], r"--outputs must be at least 1"),
])
def test_bad_arguments_are_refused(args, message, tmp_path, capsys):
    import re
    status = build.main([*args, "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
