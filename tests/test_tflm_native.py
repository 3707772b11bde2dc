"""The native emulation with the TFLM engine, where a TFLM library tree exists.

PlatformIO installs the board's TFLM library under .pio/libdeps/nano33ble/; TFLM_ROOT may
name any such tree. Nothing of TFLM is in this repository, so without one these tests
skip and say so. (The first build of the library takes many minutes.)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.device import deployed
from pipeline.emulation.emulate import emulated_device
from pipeline.device.serial_client import Device
from pipeline.device.verify import verify

ROOT = Path(__file__).resolve().parent.parent


def tflm_root() -> Path | None:
    if os.environ.get("TFLM_ROOT"):
        return Path(os.environ["TFLM_ROOT"])
    found = sorted((ROOT / ".pio" / "libdeps" / "nano33ble").glob("Chirale_TensorFLowLite*"))
    return found[0] if found else None


pytestmark = pytest.mark.skipif(
    tflm_root() is None,
    reason="no TFLM library tree: set TFLM_ROOT, or run `pio run -e nano33ble` once so PlatformIO "
           "installs it under .pio/libdeps/nano33ble/")


@pytest.fixture(scope="module")
def device():
    with emulated_device("native", tflm_root=tflm_root(), timeout=120.0) as port, Device(port, timeout=10) as dev:
        yield dev


def test_tflm_engine_identifies_itself(device):
    identity = device.identify()
    model = deployed.load()
    assert identity.engine == "tflm" and identity.model == model.id
    assert 0 < identity.arena <= model.meta["arena_bytes"]


def test_tflm_engine_is_bit_exact_with_the_oracle(device):
    result = verify(device, deployed.load())
    assert result.mismatches == 0 and result.ok, [c for c in result.checks if not c.passed]
    codes, _ = deployed.load().sweep
    assert np.asarray(device.predict_codes_many(codes.tolist())).shape == (len(codes), 1)
