"""The Nano 33 BLE's budget (pipeline/board.py) said at build time: a model whose flash cannot fit is
refused before the check, naming by how much; a TFLM arena past the board's RAM is a warning."""
from __future__ import annotations

import numpy as np
import pytest

import tflite_writer as w
from pipeline import board, build


def dense(inputs: int, outputs: int) -> bytes:
    """One FULLY_CONNECTED layer of fixed random weights: inputs x outputs bytes of flash."""
    rng = np.random.default_rng(7)
    return w.write([w.tensor("x", (1, inputs), 0.05, 0),
                    w.tensor("weights", (outputs, inputs), 0.002, 0, rng.integers(-127, 128, (outputs, inputs))),
                    w.tensor("bias", (outputs,), 0.0001, 0, rng.integers(-999, 999, outputs), "INT32"),
                    w.tensor("y", (1, outputs), 0.5, 3)],
                   [w.fully_connected(0, 1, 2, 3)], [0], [3])


def test_a_model_past_the_flash_is_refused_for_its_engine(tmp_path, capsys):
    """760,000 weights: with 128 KB of TFLM code past the 851,968 B a model may use; with the AOT
    engine's 16 KB of kernels within them."""
    model = dense(1000, 760)
    (tmp_path / "big.tflite").write_bytes(model)
    common = ["-q", "--no-footprint", "--tflite", str(tmp_path / "big.tflite"), "--report-dir", str(tmp_path / "r")]
    assert build.main([*common, "--out", str(tmp_path / "tflm")]) == 2
    line, = capsys.readouterr().err.strip().splitlines()
    need = len(model) + 128 * 1024
    assert line == (f"error: --engine tflm: the model does not fit the board's flash: its flatbuffer of {len(model):,} B "
                    f"and about 128 KB of TFLM code need {need:,} B, {need - 851_968:,} B more than the 851,968 B of "
                    "flash the Nano 33 BLE leaves a model (983,040 B of sketch flash less 128 KB for the mbed core and "
                    "USB serial)")
    assert not (tmp_path / "tflm").exists()
    assert build.main([*common, "--engine", "aot", "--out", str(tmp_path / "aot")]) == 0
    assert (tmp_path / "aot" / "model_aot.h").is_file()


def test_the_budget_is_the_mbed_cores():
    assert board.MODEL_FLASH_BYTES == 983_040 - 131_072 and board.MODEL_RAM_BYTES == 196_608
    assert board.flash_refusal(board.MODEL_FLASH_BYTES - board.ENGINE_CODE_BYTES["aot"], "aot") is None
    assert "1 B more than" in board.flash_refusal(board.MODEL_FLASH_BYTES - board.ENGINE_CODE_BYTES["aot"] + 1, "aot")


@pytest.mark.skipif(not __import__("pipeline.int8.oracle", fromlist=["x"]).tflm_available(),
                    reason="needs the tflite-micro runtime")
def test_a_tflm_arena_past_the_ram_is_a_warning(tmp_path, capsys):
    """A 3x3 convolution to 64x64x48: TFLM's arena (input, output and im2col) passes 192 KB: the build
    warns, naming by how much, and still writes the model (the AOT engine would refuse its plan)."""
    import op_models
    model = op_models.wide_feature_map()
    (tmp_path / "conv.tflite").write_bytes(model)
    assert build.main(["-q", "--no-footprint", "--tflite", str(tmp_path / "conv.tflite"), "--out", str(tmp_path / "m"),
                       "--report-dir", str(tmp_path / "r")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "TFLM's arena" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: TFLM's arena of ")
    assert "B more than the 196608 B the Nano 33 BLE leaves a sketch" in warnings[0]
    assert (tmp_path / "m" / "model_data.cpp").is_file()
