"""Device fixtures: the native emulation by default, a real board with `pytest --port /dev/ttyACM0`."""
from __future__ import annotations

from typing import Iterator

import pytest

import toolchains
from pipeline.device import deployed
from pipeline.device.deployed import DeployedModel
from pipeline.device.serial_client import Device


# Each module's tiers, for `pytest -m` (markers registered in pyproject.toml): what a test
# needs beyond numpy and pyserial, and which take minutes. A module missing here fails the run.
TIERS = {
    "test_board_budget": ("tf",), "test_calibration": ("tf",), "test_decision_gate": ("tf",), "test_api": ("tf", "emulation"), "test_cli": (), "test_error_codes": (), "test_files": (), "test_layout": (), "test_sweep": (),
    "test_tflite_corrupt": ("tf",), "test_op_conv_2d": (), "test_op_pooling": (), "test_op_elementwise": (), "test_op_shapes": (),
    "test_conv_models": ("tf", "emulation"),
    "test_aot": ("tf",), "test_build": ("tf",), "test_classify": ("tf",), "test_data": ("tf",),
    "test_ops": ("tf",), "test_reference": ("tf",), "test_train": ("tf",),
    "test_pipeline_faults": ("tf", "slow"), "test_interrupts": ("tf", "slow"), "test_without_tensorflow": ("slow",),
    "test_client": ("emulation",), "test_core_unit": ("emulation",), "test_docs": ("emulation",),
    "test_protocol": ("emulation",), "test_tflm": ("tf", "emulation"),
    "test_classifier_device": ("tf", "emulation"), "test_qemu": ("emulation", "qemu"),
    "test_footprint": ("tf", "qemu", "slow"), "test_fuzz": ("fuzz", "slow"),
    "test_aot_kernels": ("emulation",), "test_aot_conv_kernels": ("emulation",), "test_aot_fusion": ("emulation",), "test_wide_inputs": ("tf", "emulation"), "test_given_model": ("tf", "emulation"),
    "test_c_strings": ("tf",), "test_labels_rule": ("tf",), "test_model_kind": ("tf",), "test_keras_refusals": ("tf",),
    "test_model_json": (), "test_centering": ("tf", "emulation"), "test_path_arguments": ("tf",), "test_disconnect": (),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module else ""
        if module not in TIERS:
            raise pytest.UsageError(f"{module}.py has no tiers: add it to TIERS in tests/conftest.py")
        for tier in TIERS[module]:
            item.add_marker(tier)
        if "qemu" in item.nodeid.split("::")[-1]:  # a QEMU target or measurement in another module
            item.add_marker("qemu")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--port", action="store", default=None, metavar="PORT",
                     help="run the device tests against this serial port (a real board) "
                          "instead of the native emulation")


@pytest.fixture(scope="session")
def real_port(request: pytest.FixtureRequest) -> str | None:
    """The --port given on the command line, or None when the tests use the emulation."""
    return request.config.getoption("--port")


@pytest.fixture(scope="session")
def native_tools() -> None:
    """Skips (naming the packages) where the native emulation cannot be built."""
    problem = toolchains.native_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def device_port(request: pytest.FixtureRequest, real_port: str | None) -> Iterator[str]:
    """One device for the whole session: the board on --port, or one native emulation."""
    if real_port:
        yield real_port
        return
    request.getfixturevalue("native_tools")
    from pipeline.emulation.emulate import emulated_device
    with emulated_device("native") as port:
        yield port


@pytest.fixture
def device(device_port: str) -> Iterator[Device]:
    """A fresh connection per test; the port is free again for CLI subprocesses afterwards."""
    with Device(device_port) as opened:
        yield opened


@pytest.fixture(scope="session")
def model() -> DeployedModel:
    return deployed.load()
