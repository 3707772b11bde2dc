"""pipeline.emit.files: each output folder changes as a whole, whatever system call the writer dies at."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.emit import files
from pipeline.emit.files import OutputError, recover, write_all

ROOT = Path(__file__).resolve().parent.parent
STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="needs strace (Debian package strace)")

OLD = {"m": {"model.json": b"old json", "model_data.cpp": b"old data", "model_info.h": b"old"},
       "r": {"report.json": b"old report", "fit.png": b"old picture"}}
NEW = {"m": {"model.json": b"new json", "model_data.cpp": b"new data " * 1000, "model_info.h": b"new"},
       "r": {"report.json": b"new report", "fit.png": b"new picture"}}
USER_FILE = ("README", b"the user's own notes")  # in m, written by no build
SYSCALLS = ("rename", "renameat", "renameat2", "fsync", "fdatasync", "mkdir", "unlink", "unlinkat", "rmdir")

# Runs write_all in a process of its own, the unit under the kill test: the real build does
# exactly this call with its two folders (model first, then report).
WRITER = """
import json, sys
from pathlib import Path
from pipeline.emit import files
if sys.argv[3] == "fallback":
    files._exchange = lambda a, b: False
base = Path(sys.argv[1])
sets = json.loads(Path(sys.argv[2]).read_text())
files.write_all({base / folder / name: data.encode("latin-1")
                 for folder, contents in sets.items() for name, data in contents.items()})
"""


def folder_digest(folder: Path) -> dict[str, str] | None:
    if not folder.is_dir():
        return None
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def expected(sets: dict[str, dict[str, bytes]], folder: str) -> dict[str, str]:
    contents = dict(sets[folder])
    if folder == "m":
        contents[USER_FILE[0]] = USER_FILE[1]
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(contents.items())}


def paths(base: Path, sets: dict[str, dict[str, bytes]]) -> dict[Path, bytes]:
    return {base / folder / name: data for folder, contents in sets.items() for name, data in contents.items()}


def prepare(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)
    write_all(paths(base, OLD))
    (base / "m" / USER_FILE[0]).write_bytes(USER_FILE[1])


def test_new_set_replaces_old_and_keeps_unknown_files(tmp_path: Path) -> None:
    prepare(tmp_path)
    write_all(paths(tmp_path, NEW))
    assert folder_digest(tmp_path / "m") == expected(NEW, "m")
    assert folder_digest(tmp_path / "r") == expected(NEW, "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "r"]
    assert oct((tmp_path / "m" / "model.json").stat().st_mode & 0o777) == "0o644"


def test_a_build_file_this_write_does_not_replace_is_removed(tmp_path: Path) -> None:
    """A classifier build's confusion.png does not outlive it: owned names not written now go, a
    user's file stays."""
    prepare(tmp_path)
    (tmp_path / "r" / "confusion.png").write_bytes(b"an earlier classifier's")
    write_all(paths(tmp_path, {"m": NEW["m"], "r": {"report.json": b"regression"}}),
              frozenset({"confusion.png", "fit.png", "report.json", *NEW["m"]}))
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.json"]
    assert folder_digest(tmp_path / "m") == expected(NEW, "m")


def test_the_report_folder_holds_the_last_builds_files_only(tmp_path: Path) -> None:
    """The seed's fit.png and loss.png, then a --tflite build that draws none: the report folder
    holds that build's report alone; every file a build writes is one it owns."""
    from pipeline import build, stages
    out, report = tmp_path / "model", tmp_path / "report"
    common = ["-q", "--no-footprint", "--out", str(out), "--report-dir", str(report)]
    assert build.main(common + ["--epochs", "20"]) == 0
    assert {"fit.png", "loss.png", "report.json"} <= {p.name for p in report.iterdir()}
    (out / "NOTES.txt").write_text("mine")
    assert build.main(common + ["--tflite", str(ROOT / "firmware" / "model" / "model.tflite")]) == 0
    assert sorted(p.name for p in report.iterdir()) == ["report.json", "report.md"]
    assert (out / "NOTES.txt").read_text() == "mine"
    assert {p.name for p in out.iterdir()} - {"NOTES.txt"} <= stages.BUILD_FILES


def test_fallback_swap_and_its_recovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    prepare(tmp_path)
    write_all(paths(tmp_path, NEW))
    assert folder_digest(tmp_path / "m") == expected(NEW, "m")
    # What a kill between the fallback's two renames leaves: the target aside, the new set staged.
    os.rename(tmp_path / "m", tmp_path / ".m.old-999999")
    shutil.copytree(tmp_path / ".m.old-999999", tmp_path / ".m.staging-999999")
    recover(tmp_path / "m")
    assert folder_digest(tmp_path / "m") == expected(NEW, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "r"]


def test_a_folder_holding_folders_is_refused_unchanged(tmp_path: Path) -> None:
    prepare(tmp_path)
    (tmp_path / "r" / "native").mkdir()
    with pytest.raises(OutputError, match=r"holds the folder native/, which the build does not write"):
        write_all(paths(tmp_path, NEW))
    assert folder_digest(tmp_path / "m") == expected(OLD, "m")  # the model was staged, never swapped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "r"]


def test_a_symlinked_target_is_written_through(tmp_path: Path) -> None:
    prepare(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real" / "m")
    write_all({tmp_path / "link" / name: data for name, data in NEW["m"].items()})
    assert (tmp_path / "link").is_symlink()
    assert folder_digest(tmp_path / "link") == expected(NEW, "m")


def test_leftovers_of_the_file_by_file_writer_are_removed(tmp_path: Path) -> None:
    prepare(tmp_path)
    (tmp_path / "m" / ".model.json.k3j9x.tmp").write_bytes(b"torn")
    (tmp_path / ".fit.png.a1b2c.tmp").write_bytes(b"torn")  # the report's old home was the parent
    write_all(paths(tmp_path, {"m": NEW["m"], "r": {"fit.png": NEW["r"]["fit.png"]}}))
    assert ".model.json.k3j9x.tmp" not in os.listdir(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "r"]


def _killed_at(syscall: str, n: int, base: Path, sets_file: Path, mode: str) -> bool:
    run = subprocess.run([STRACE, "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                          "-e", f"inject={syscall}:signal=SIGKILL:when={n}",
                          sys.executable, "-S", "-c", WRITER, str(base), str(sets_file), mode],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    if run.returncode == 0:
        return False
    assert run.returncode in (-9, 137), run.stderr
    return True


@needs_strace
@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_killed_at_every_rename_fsync_mkdir_unlink_leaves_a_whole_set(tmp_path: Path, mode: str) -> None:
    """SIGKILL at the n-th call of each system call the writer makes, n = 1, 2, ... until it
    completes: each folder then holds exactly the whole old set or the whole new one (with the
    fallback, after the recovery the next write makes first), and the next write leaves no
    staging behind."""
    base = tmp_path / "out"
    sets_file = tmp_path / "new.json"
    sets_file.write_text(json.dumps({f: {n: d.decode("latin-1") for n, d in c.items()} for f, c in NEW.items()}))
    whole = {folder: [expected(OLD, folder), expected(NEW, folder)] for folder in ("m", "r")}
    kills = {}
    for syscall in SYSCALLS:
        n = 0
        while True:
            n += 1
            prepare(base)
            if not _killed_at(syscall, n, base, sets_file, mode):
                break
            states = {folder: folder_digest(base / folder) for folder in ("m", "r")}
            if mode == "exchange":
                for folder, state in states.items():
                    assert state in whole[folder], (syscall, n, folder, state)
            recover(base / "m")
            recover(base / "r")
            for folder in ("m", "r"):
                state = folder_digest(base / folder)
                assert state in whole[folder], (syscall, n, folder, state)
                assert state == states[folder] or states[folder] is None, (syscall, n, folder)
            assert sorted(p.name for p in base.iterdir()) == ["m", "r"], (syscall, n)
        assert folder_digest(base / "m") == expected(NEW, "m")
        kills[syscall] = n - 1
    assert kills["fsync"] >= 9 and kills["mkdir"] >= 2  # every file, each folder and the parent
    assert (kills["renameat2"], kills["rename"]) == ((2, 0) if mode == "exchange" else (0, 4)), kills
