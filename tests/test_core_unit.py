"""The portable core's in-process unit test (firmware/tests/core_test.c), built by CMake
(target core_test) and run here: request lines in memory through app_feed with the
test's own engine, every answer compared byte for byte, and the decimal unit's
exactness cases. Fast: no pty, no emulator. Built with -Werror, and under AddressSanitizer
and UBSan where the compiler can link them."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import toolchains

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("queries", "errors", "bench", "engine failure", "line editing", "echo",
          "decimal parse", "decimal format")

_problem = toolchains.native_problem()
pytestmark = pytest.mark.skipif(_problem is not None, reason=_problem or "")


@pytest.fixture(scope="module")
def core_test() -> Path:
    build = ROOT / "build" / "core-test"
    sanitize = "ON" if toolchains.sanitize_problem() is None else "OFF"
    toolchains.cmake(["-S", str(ROOT / "firmware"), "-B", str(build), "-DWERROR=ON", f"-DSANITIZE={sanitize}",
                      "-DTFLM_ROOT=", "-DFUZZ=OFF"], "configuring the core test")
    toolchains.cmake(["--build", str(build), "--target", "core_test", "core_test_classify", "core_test_wide"],
                     "building the core test")
    return build / "core_test"


def run(program: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=120, check=False)


def test_every_check_passes(core_test: Path) -> None:
    done = run(core_test)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:-1] == [f"ok {group}" for group in GROUPS], done.stdout
    summary = re.fullmatch(r"core_test: (\d+) checks, 0 failed", lines[-1])
    assert summary and int(summary.group(1)) >= 250, lines[-1]


def test_a_wrong_expected_answer_fails(core_test: Path) -> None:
    """--fail-one adds one check that expects 0.7 0.6 where the device answers 0.7 0.5."""
    done = run(core_test, "--fail-one")
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'got  "0.7 0.5\\r\\n"\n  want "0.7 0.6\\r\\n"' in done.stdout, done.stdout
    assert "FAILED wrong expectation" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(" checks, 1 failed")


def test_the_cores_ram_does_not_grow_with_the_model(core_test: Path) -> None:
    """Beside the model's input and output, app_t is the same for 2 outputs, a classifier's labels and 40
    outputs (answers are formatted as they are sent), and within what the AOT plan's board check
    counts for it (APP_CORE_BYTES)."""
    from pipeline import board
    sizes = [int(run(core_test.parent / name, "--state-bytes").stdout)
             for name in ("core_test", "core_test_classify", "core_test_wide")]
    assert max(sizes) - min(sizes) < 8 and max(sizes) <= board.APP_CORE_BYTES, sizes


def test_unknown_arguments_are_refused(core_test: Path) -> None:
    done = run(core_test, "--no-such-flag")
    assert done.returncode == 2 and "usage:" in done.stderr


def test_a_classifier_answers_its_top_label_and_lists_its_labels(core_test: Path) -> None:
    """The same core built over a classifier's header: labels, the task in id, ties to the lower index."""
    done = run(core_test.with_name("core_test_classify"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["ok classifier", "core_test: 18 checks, 0 failed"], done.stdout


def test_a_wide_model_takes_queries_far_longer_than_a_stored_line(core_test: Path) -> None:
    """1,024 inputs and 40 outputs: value and `q` queries of thousands of bytes parsed as they
    arrive (split in two at every byte, and byte by byte), counts past the inputs, bad and
    overlong fields, Backspace in a long line, commands over 128 bytes, and echoes of answers
    longer than 128 bytes recognised without storing them."""
    done = run(core_test.with_name("core_test_wide"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:-1] == ["ok wide"], done.stdout
    summary = re.fullmatch(r"core_test: (\d+) checks, 0 failed", lines[-1])
    assert summary and int(summary.group(1)) >= 80, lines[-1]
