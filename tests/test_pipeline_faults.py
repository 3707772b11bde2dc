"""Bad data and arguments against the real output folders: one line, nonzero exit, committed sources untouched."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.deployed import MODEL_DIR, ROOT


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


CASES = [
    ("missing file", lambda t: ["--data", str(t / "nope.csv")], 2, "no such file"),
    ("non-numeric cell", lambda t: ["--data", _file(t, "a.csv", "x,y\n1,2\n2,two\n")], 2, ":3: column 2: 'two'"),
    ("NaN", lambda t: ["--data", _file(t, "b.csv", "1,2\n2,NaN\n")], 2, ":2: column 2: 'NaN' is not a finite number"),
    ("ragged", lambda t: ["--data", _file(t, "c.csv", "1,2\n2\n")], 2, ":2: 1 column(s), expected 2"),
    ("one row", lambda t: ["--data", _file(t, "d.csv", "1,2\n")], 2, "need at least 2"),
    ("empty", lambda t: ["--data", _file(t, "e.csv", "")], 2, "empty file"),
    ("directory as data", lambda t: ["--data", str(t)], 2, "is a directory"),
    ("range without the data", lambda t: ["--input-range", "0", "2"], 2, "does not contain the data"),
    ("inverted range", lambda t: ["--input-range", "12", "-1"], 2, "need finite LO < HI"),
    ("per-channel for TFLM", lambda t: ["--per-channel"], 2, "--per-channel is refused"),
    # A different model, so that writing its sources before failing on the report would show.
    ("unwritable report folder", lambda t: ["--model", "two-layer", "--report-dir", _file(t, "f", "a file") + "/sub"],
     2, "cannot write output"),
    ("training diverges to NaN", lambda t: ["--lr", "5", "--epochs", "300"], 1, "training diverged"),
    ("tolerance too tight", lambda t: ["--tolerance-lsb", "0.01"], 1, "--tolerance-lsb"),
]


@pytest.mark.parametrize("name,args,status,message", CASES, ids=[c[0] for c in CASES])
def test_fault_leaves_committed_sources(name, args, status, message, tmp_path):
    before = digest(MODEL_DIR)
    run = subprocess.run([sys.executable, "-m", "pipeline.build", *args(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == status, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert digest(MODEL_DIR) == before
