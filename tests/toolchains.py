"""What the emulation and fuzz tests need from the machine, checked for real: a compiler
that is present but cannot link its runtime is missing too, and the skip names the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import pytest

from pipeline.emulation import cmake_build

FUZZ_PACKAGES = "clang libclang-rt-14-dev cmake make"
ROOT = Path(__file__).resolve().parent.parent


def tflm_root() -> Path | None:
    """The board's TFLM tree for the TFLM engine's tests: TFLM_ROOT (CI sets it), else the one
    PlatformIO installs under .pio/libdeps/nano33ble/ after `pio run`; None without either."""
    if os.environ.get("TFLM_ROOT"):
        return Path(os.environ["TFLM_ROOT"])
    found = sorted((ROOT / ".pio" / "libdeps" / "nano33ble").glob("Chirale_TensorFLowLite*"))
    return found[0] if found else None


def _links(compiler: str, flags: Sequence[str], source: str, suffix: str) -> str | None:
    """None when `compiler flags source` compiles and links, else the compiler's first error line."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"probe{suffix}"
        src.write_text(source)
        run = subprocess.run([compiler, *flags, str(src), "-o", str(Path(tmp) / "probe")],
                             capture_output=True, text=True, timeout=120, check=False)
    if run.returncode == 0:
        return None
    output = (run.stderr + run.stdout).splitlines()
    lines = [line for line in output if "cannot find" in line or "fatal error" in line] or \
        [line for line in output if "error" in line] or output
    return lines[0].strip() if lines else f"exit status {run.returncode}"


def native_problem() -> str | None:
    """None when CMake and a C compiler can build the native emulation."""
    compiler = os.environ.get("CC", "").split()[:1] or ["cc", "gcc", "clang"]
    if shutil.which("cmake") is None or shutil.which("make") is None or not any(shutil.which(c) for c in compiler):
        return "the native emulation needs cmake, make and a C compiler: apt-get install cmake make g++"
    return None


def sanitize_problem() -> str | None:
    """None when the native emulation can be built with AddressSanitizer and UBSan (gcc's libasan, libubsan)."""
    problem = native_problem()
    if problem:
        return problem
    compiler = os.environ.get("CC", "").split()[:1] or [next(c for c in ("cc", "gcc", "clang") if shutil.which(c))]
    error = _links(compiler[0], ["-fsanitize=address,undefined"], "int main(void) { return 0; }\n", ".c")
    if error:
        return f"{compiler[0]} cannot link AddressSanitizer and UBSan ({error}): apt-get install g++ (libasan8, libubsan1)"
    return None


def fuzz_problem() -> str | None:
    """None when clang can link a libFuzzer harness with ASan and UBSan (libclang-rt-14-dev)."""
    if shutil.which("clang") is None or shutil.which("cmake") is None or shutil.which("make") is None:
        return f"fuzzing needs clang and cmake: apt-get install {FUZZ_PACKAGES}"
    error = _links("clang", ["-fsanitize=fuzzer,address,undefined"],
                   "#include <stddef.h>\n#include <stdint.h>\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n", ".c")
    if error:
        return (f"clang cannot link a fuzzer with its sanitizer runtimes ({error}): "
                f"apt-get install {FUZZ_PACKAGES}")
    return None


def cmake(args: Sequence[str], what: str) -> None:
    """Runs one CMake step; a failure fails the test with the compiler's own error, not a bare exit status."""
    try:
        cmake_build.run_logged(["cmake", *args], what, verbose=False)
    except cmake_build.BuildError as error:
        pytest.fail(str(error), pytrace=False)
