"""One command-line policy: exit statuses, one-line errors, --traceback, the tinyml console script."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.errors import BadInput, PipelineError

TINYML = Path(sysconfig.get_path("scripts")) / "tinyml"


def _raising(error: BaseException):
    @cli.command
    def main(argv: list[str]) -> int:
        raise error
    return main


@pytest.mark.parametrize("error,status,line", [
    (PipelineError("the model failed"), 1, "error: the model failed\n"),
    (BadInput("data.csv:3: column 2: 'x' is not a number"), 2, "error: data.csv:3: column 2: 'x' is not a number\n"),
    (KeyboardInterrupt(), 130, "interrupted\n"),
    (ZeroDivisionError("division by zero"), 1,
     "error: ZeroDivisionError: division by zero (a bug: run again with --traceback and report what it prints)\n"),
])
def test_each_kind_of_error_is_one_line_and_its_status(error, status, line, capsys):
    assert _raising(error)([]) == status
    assert capsys.readouterr().err == line


def test_traceback_prints_where_then_the_same_line(capsys):
    assert _raising(BadInput("bad"))(["--traceback"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith("\nerror: bad\n")
    assert "raise error" in err


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TINYML), *args], capture_output=True, text=True, timeout=120)


needs_script = pytest.mark.skipif(not TINYML.exists(), reason="the tinyml console script is not installed "
                                                               "(pip install -e .)")


@needs_script
def test_tinyml_lists_the_commands_of_python_m_pipeline():
    done = run("--help")
    assert done.returncode == 0
    for name in ("build", "predict", "verify", "emulate", "footprint"):
        assert f"\n  {name} " in done.stdout
    assert run().returncode == 2 and run("train").returncode == 2


@needs_script
@pytest.mark.parametrize("command", ["build", "predict", "verify", "emulate", "footprint"])
def test_tinyml_command_help_names_itself_and_the_exit_statuses(command):
    done = run(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: tinyml {command} ")
    assert "--traceback" in done.stdout
    assert "2 bad data or arguments" in " ".join(done.stdout.split())


@needs_script
def test_tinyml_build_refuses_bad_data_like_python_m(tmp_path):
    done = run("build", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m"))
    same = subprocess.run([sys.executable, "-m", "pipeline.build", "--data", str(tmp_path / "nope.csv"),
                           "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (same.returncode, same.stderr) == (2, f"error: {tmp_path / 'nope.csv'}: no such file\n")
    usage = run("build", "--epochs", "x")
    assert usage.returncode == 2 and usage.stderr == "error: argument --epochs: 'x' is not a whole number (see --help)\n"


def test_a_reader_that_quits_ends_the_command_quietly(tmp_path):
    """`python -m pipeline.build | head -1`, its reader gone: the build's first print meets a closed
    pipe (closed before the build starts, so no timing is involved); the status is 141, as a shell
    tool's, nothing is printed about it (no "(a bug ...)" line) and nothing is written."""
    import os
    reader, writer = os.pipe()
    os.close(reader)
    process = subprocess.Popen([sys.executable, "-m", "pipeline.build", "--no-footprint", "--out", str(tmp_path / "m"),
                                "--report-dir", str(tmp_path / "r")], cwd=Path(__file__).resolve().parent.parent,
                               stdout=writer, stderr=subprocess.PIPE, text=True)
    os.close(writer)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == cli.BROKEN_PIPE and stderr == ""
    assert not (tmp_path / "m").exists()
