"""Refusals through the real command, against the real output folders: one line, its exit status,
committed sources untouched. One case per kind of refusal; the many ways data and arguments can be
bad are tested in process (test_data.py), where they cost no interpreter start."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.paths import MODEL_DIR, ROOT


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _folder_with_folder(tmp: Path) -> str:
    (tmp / "shared" / "native").mkdir(parents=True)  # like build/, the report's old home
    return str(tmp / "shared")


CASES = [
    ("missing file", lambda t: ["--data", str(t / "nope.csv")], 2, "no such file"),
    # A different model, so that writing its sources before failing on the report would show.
    ("unwritable report folder", lambda t: ["--model", "two-layer", "--report-dir", _file(t, "f", "a file") + "/sub"],
     2, "cannot write output"),
    ("report folder holding folders", lambda t: ["--model", "two-layer", "--report-dir", _folder_with_folder(t)],
     2, "holds the folder native/, which the build does not write"),
    ("tolerance too tight", lambda t: ["--tolerance-lsb", "0.01"], 1, "--tolerance-lsb"),
    ("NaN learning rate", lambda t: ["--lr", "nan"], 2, "argument --lr: 'nan' is not a finite decimal number"),
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


def _report_signature(folder: Path) -> tuple:
    """The report less its timings (which differ from run to run): names, pictures, model."""
    import json
    names = sorted(p.name for p in folder.iterdir())
    report = json.loads((folder / "report.json").read_text()) if (folder / "report.json").is_file() else None
    pictures = {name: digest(folder)[name] for name in ("fit.png", "loss.png") if name in names}
    return names, pictures, report and report["model"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (Debian package strace)")
def test_build_killed_while_writing_leaves_whole_sets(tmp_path):
    """The real build, SIGKILLed at the model's and at the report's swap and while staging: each
    folder holds the whole old set or the whole new one, and the next build leaves no staging.
    (tests/test_files.py kills the same writer at every rename, fsync, mkdir and unlink.)"""
    def build_into(base: Path, model: str, strace: list[str] = ()) -> subprocess.CompletedProcess:
        return subprocess.run([*strace, sys.executable, "-m", "pipeline.build", "-q", "--no-footprint", "--model",
                               model, "--out", str(base / "m"), "--report-dir", str(base / "r")],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)

    from pipeline import build
    old = tmp_path / "old"
    assert build.main(["-q", "--no-footprint", "--out", str(old / "m"), "--report-dir", str(old / "r")]) == 0
    states = []
    for syscall, when in (("fsync", 1), ("renameat2", 1), ("renameat2", 2)):
        base = tmp_path / f"{syscall}-{when}"
        shutil.copytree(old, base)
        run = build_into(base, "two-layer", ["strace", "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                                             "-e", f"inject={syscall}:signal=SIGKILL:when={when}"])
        assert run.returncode in (-9, 137), run.stderr
        states.append((digest(base / "m"), _report_signature(base / "r")))
    assert build_into(base, "two-layer").returncode == 0  # the next build, over the last kill's leftovers
    assert sorted(os.listdir(base)) == ["m", "r"]
    sets = {"neuron": (digest(old / "m"), _report_signature(old / "r")),
            "two-layer": (digest(base / "m"), _report_signature(base / "r"))}
    assert sets["neuron"][0] != sets["two-layer"][0]
    outcomes = [(next(m for m, (d, _) in sets.items() if d == model), next(m for m, (_, r) in sets.items() if r == report))
                for model, report in states]
    # Killed while staging: all old; at the model's swap: still old; at the report's: new model, old report.
    assert outcomes == [("neuron", "neuron"), ("neuron", "neuron"), ("two-layer", "neuron")]
