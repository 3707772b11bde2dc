"""Every path argument judged truly, as --data is (pipeline.model.data.regular_file): a directory,
a FIFO, /dev/zero and a missing file each get their own one line and exit 2, and nothing is
opened to find out (a FIFO would block). A .keras file Keras cannot read is said to be what it
is, not "File not found". A model folder without a model is exit 2 to every command."""
from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from pipeline import build
from pipeline.device import predict, verify
from pipeline.emulation import emulate
from pipeline.footprint import measurement

COMMITTED = Path(__file__).resolve().parent.parent / "firmware" / "model"
WANTED = {"--keras": "a Keras 3 .keras file", "--tflite": "an int8 .tflite file",
          "--float-model": "a .keras or float .tflite file"}


def _path(tmp_path: Path, kind: str, suffix: str) -> Path:
    path = tmp_path / f"model{suffix}"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "/dev/zero":
        path = Path("/dev/zero")
    return path  # "missing": nothing made


def _argv(flag: str, path: Path, tmp_path: Path) -> list[str]:
    given = ["--tflite", str(COMMITTED / "model.tflite"), "--float-model", str(path)] if flag == "--float-model" \
        else [flag, str(path)]
    return [*given, "--out", str(tmp_path / "out"), "--report-dir", str(tmp_path / "report"), "--no-footprint"]


def _run_unblocked(main: Callable[[list[str]], int], argv: list[str], fifo: Path | None) -> int:
    """main(argv) in a thread; if it hangs on the FIFO, open the FIFO's other end so the test fails, not hangs."""
    status: list[int] = []
    runner = threading.Thread(target=lambda: status.append(main(argv)))
    runner.start()
    runner.join(60)
    if runner.is_alive() and fifo is not None:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        runner.join(10)
        pytest.fail(f"{argv}: blocked opening the FIFO")
    assert status, "main did not return"
    return status[0]


KINDS = {"missing": "no such file", "directory": "is a directory, not {wanted}",
         "fifo": "not a regular file (a device, FIFO or socket); give {wanted}",
         "/dev/zero": "not a regular file (a device, FIFO or socket); give {wanted}"}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("flag", sorted(WANTED))
def test_a_model_path_that_is_no_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             flag: str, kind: str) -> None:
    path = _path(tmp_path, kind, ".keras" if flag == "--keras" else ".tflite")
    status = _run_unblocked(build.main, _argv(flag, path, tmp_path), path if kind == "fifo" else None)
    problem = KINDS[kind].format(wanted=WANTED[flag])
    assert (status, capsys.readouterr().err) == (2, f"error: {flag} {path}: {problem}\n")
    assert not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


@pytest.mark.parametrize("flag", ["--keras", "--float-model"])
def test_a_keras_file_that_is_no_zip_is_said_to_be_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    path = tmp_path / "model.keras"
    for content, problem in ((b"", "not a zip archive"), (b"not a model\n", "not a zip archive"),
                             (None, "its zip archive holds no config.json")):
        if content is None:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("model.weights.h5", b"")
        else:
            path.write_bytes(content)
        assert build.main(_argv(flag, path, tmp_path)) == 2
        assert capsys.readouterr().err == (f"error: {flag} {path}: not a Keras 3 .keras file: {problem} "
                                           "(model.save('model.keras') writes one)\n")


def test_an_unreadable_model_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file: no permission to take away")
    path = tmp_path / "model.tflite"
    path.write_bytes((COMMITTED / "model.tflite").read_bytes())
    path.chmod(0)
    assert build.main(_argv("--tflite", path, tmp_path)) == 2
    assert capsys.readouterr().err == f"error: --tflite {path}: cannot read: Permission denied\n"


NO_MODEL = [
    ("emulate", lambda d: emulate.main(["native", "--model-dir", str(d)])),
    ("footprint", lambda d: measurement.main(["--model-dir", str(d)])),
    ("predict --emulate --allow-stale", lambda d: predict.main(["--emulate", "native", "--allow-stale",
                                                                  "--model-dir", str(d), "1"])),
]


@pytest.mark.parametrize("run", [r[1] for r in NO_MODEL], ids=[r[0] for r in NO_MODEL])
def test_a_folder_without_a_model_is_bad_input_to_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                run: Callable[[Path], int]) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    assert run(folder) == 2
    # With a TFLM tree ($TFLM_ROOT, as CI sets it) the TFLM engine is built, which compiles the flatbuffer's
    # source too; the AOT engine needs the two headers only.
    needed = "model_info.h, model_aot.h" + (", model_data.cpp" if os.environ.get("TFLM_ROOT") else "")
    assert capsys.readouterr().err == (f"error: {folder.resolve()}: no emitted model ({needed} missing): run "
                                       f"python -m pipeline.build --out {folder}\n")


def test_predict_and_verify_say_the_same_of_a_folder_without_a_model(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    line = f"error: {folder / 'model.json'}: missing; run python -m pipeline.build\n"
    assert predict.main(["--model-dir", str(folder), "1"]) == 2
    assert capsys.readouterr().err == line
    assert verify.main(["--model-dir", str(folder), "--port", os.devnull]) == 2
    assert capsys.readouterr().err == line
