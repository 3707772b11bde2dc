"""The device side needs no TensorFlow: verify runs with tensorflow, keras and tflite_micro unimportable.

Where the tflite-micro wheel does not exist (macOS, Windows, ARM Linux) the integer
reference is the oracle, and reading the flatbuffer must not need TensorFlow either.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCKED = ("tensorflow", "keras", "tflite_micro")
WITHOUT = f"""
import runpy, sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (made unimportable by the test)", name=name)
sys.meta_path.insert(0, Blocked())
sys.argv = ["verify", *sys.argv[1:]]
runpy.run_module(sys.argv.pop(1), run_name="__main__")
"""


def test_verify_without_tensorflow_is_bit_exact(device_port: str) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT, "pipeline.verify", "--port", device_port], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "int8 oracle: reference" in done.stdout
    assert "int8 mismatches vs reference: 0 of 256 rows" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(" 0 failed")


def test_build_without_tensorflow_names_the_extra() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT, "pipeline.build", "--no-footprint"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["error: the build needs keras, which this install lacks: pip install -e "
                                        "'.[build]' (the base install is the device side: predict, verify, emulate)"]
