"""The whole build: files, report, determinism, the lesson's x = 10, refusals that leave files untouched."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline import build, deployed, quantize, reference, tflite_model
import trained

EMITTED = {"model_data.h", "model_data.cpp", "model_info.h", "model_aot.h", "model_aot.c", "model.json", "model.tflite"}


def run_build(tmp_path: Path, *args: str, name: str = "a", footprint: bool = False) -> tuple[int, Path, Path]:
    out, rep = tmp_path / name / "model", tmp_path / name / "report"
    status = build.main(["-q", "--footprint" if footprint else "--no-footprint", *args, "--out", str(out),
                         "--report-dir", str(rep)])
    return status, out, rep


def test_report_has_the_footprint_on_cortex_m4(tmp_path):
    from pipeline import qemu
    problem = qemu.toolchain_problem() or qemu.qemu_problem()
    if problem:
        pytest.skip(problem)
    status, _, rep = run_build(tmp_path, footprint=True)
    assert status == 0
    r = json.loads((rep / "report.json").read_text())
    aot = r["footprint"]["aot"]
    assert 0 < aot["flash_bytes"] <= 1024 and aot["ram_bytes"] <= 64
    assert 0 < aot["instructions_per_inference"] < 590 / 10
    assert "footprint aot: flash" in (rep / "report.md").read_text()


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    status, out, rep = run_build(tmp)
    assert status == 0
    return out, rep


def test_default_build_writes_sources_and_report(default_build):
    out, rep = default_build
    assert {p.name for p in out.iterdir()} == EMITTED
    assert {p.name for p in rep.iterdir()} == {"report.json", "report.md", "fit.png", "loss.png"}
    for png in ("fit.png", "loss.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = (out / "model.tflite").read_bytes()
    info = (out / "model_info.h").read_text()
    sha = hashlib.sha256(model).hexdigest()
    assert f'#define MODEL_SHA256 "{sha}"' in info and f'#define MODEL_ID "{sha[:12]}"' in info
    assert "#define MODEL_TFLM_OPS(OP) OP(AddFullyConnected)" in info
    assert "#define MODEL_INPUT_MIN -1.0f" in info and "#define MODEL_INPUT_MAX 12.0f" in info
    cpp = (out / "model_data.cpp").read_text()
    assert "alignas(16) const unsigned char g_model[]" in cpp and f"g_model_len = {len(model)};" in cpp
    array = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", cpp))
    assert array == model


def test_report_has_the_lesson_and_the_metrics(default_build):
    _, rep = default_build
    r = json.loads((rep / "report.json").read_text())
    assert r["learned"]["equation"][0].startswith("y = 1.997")
    w = r["learned"]["layers"][0]["weights"][0][0]
    assert 1.99 < w < 2.0
    assert abs(r["lesson"]["int8"] - r["lesson"]["float"]) < 0.1 and 18.9 < r["lesson"]["float"] < 19.0
    c = r["check"]
    assert c["mismatches"] == 0 and c["sweep_count"] == 256
    assert set(c["errors"]) >= {"mae", "rmse", "max_abs", "max_lsb", "l2_relative"}
    assert c["errors"]["max_lsb"] <= 1.0
    assert r["model"]["arena_bytes"] >= r["model"]["arena_measured_bytes"] > 0
    md = (rep / "report.md").read_text()
    assert "| calibrated range |" in md and "y = 1.997" in md


def test_model_json_agrees_with_flatbuffer(default_build):
    out, _ = default_build
    m = deployed.load(out)
    parsed = tflite_model.read(m.tflite)
    assert m.meta["input"] == {"scale": float(parsed.input.scales[0]), "zero_point": int(parsed.input.zero_points[0])}
    codes, floats = m.sweep
    assert codes.shape == (256, 1) and floats.shape == (256, 1)
    assert m.input_range == (-1.0, 12.0) and m.meta["ops"] == ["FULLY_CONNECTED"]


def test_build_is_deterministic(default_build, tmp_path):
    out, _ = default_build
    status, again, _ = run_build(tmp_path)
    assert status == 0 and digest(again) == digest(out)


def test_committed_sources_are_the_default_build(default_build):
    """A fresh clone builds the firmware without TensorFlow: the committed model must be today's default."""
    out, _ = default_build
    assert digest(deployed.MODEL_DIR) == digest(out)


def test_calibrating_on_training_xs_alone_saturates_x10():
    model = quantize.convert(trained.keras_model(), (-1.0, 4.0))
    parsed = tflite_model.read(model)
    i, o = parsed.input, parsed.output
    from pipeline import quant
    code = quant.quantize(np.array([[10.0]]), float(i.scales[0]), int(i.zero_points[0]))
    y = quant.dequantize(reference.run(parsed, code), float(o.scales[0]), int(o.zero_points[0]))[0, 0]
    assert 6.9 < y < 7.1  # the lesson's question answered as if x were 4
    default = tflite_model.read(trained.tflite())
    code = quant.quantize(np.array([[10.0]]), float(default.input.scales[0]), int(default.input.zero_points[0]))
    y = quant.dequantize(reference.run(default, code), float(default.output.scales[0]), int(default.output.zero_points[0]))[0, 0]
    expected = float(trained.keras_model()(np.array([[10.0]], dtype=np.float32))[0, 0])
    assert abs(y - expected) < 0.1


def test_per_channel_weights_are_refused_naming_the_tensor():
    parsed = tflite_model.read(trained.tflite((2,), per_channel=True))
    with pytest.raises(quantize.QuantizationError, match=r"'[^']*MatMul[^']*' \(op 0, 2 scales\)"):
        quantize.require_per_tensor(parsed)
    quantize.require_per_tensor(tflite_model.read(trained.tflite((2,))))


def test_aot_engine_accepts_per_channel(tmp_path):
    status, out, _ = run_build(tmp_path, "--model", "two-layer", "--engine", "aot", "--per-channel")
    assert status == 0
    assert deployed.load(out).meta["per_channel"] is True


def test_tape_trainer_reproduces_the_lesson(tmp_path, capsys):
    out, rep = tmp_path / "m", tmp_path / "r"
    assert build.main(["--trainer", "tape", "--no-footprint", "--out", str(out), "--report-dir", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "step  50: w = 1.9812, b = -0.9418" in text
    traj = json.loads((rep / "report.json").read_text())["training"]["trajectory"]
    assert len(traj) == 50 and round(traj[-1]["w"], 2) == 1.98 and round(traj[-1]["b"], 2) == -0.94


def test_two_layer_shows_the_hand_computation(tmp_path, capsys):
    assert build.main(["--model", "two-layer", "--no-footprint", "--out", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert re.search(r"h1_1 = .*\*x \+ .* = ", text) and re.search(r"y = .*\*h1_1 \+ .*\*h1_2", text)
    diff = float(re.search(r"by hand - predict\(10\) = (\S+)", text).group(1))
    assert abs(diff) < 1e-4


def test_nonlinear_csv_with_hidden_relu(tmp_path):
    xs = np.linspace(-2, 2, 41)
    path = tmp_path / "square.csv"
    path.write_text("x,y\n" + "".join(f"{x:.3f},{x * x:.4f}\n" for x in xs))
    status, out, rep = run_build(tmp_path, "--data", str(path), "--hidden", "16,16", "--activation", "relu",
                                 "--optimizer", "adam", "--epochs", "800", "--lr", "0.02")
    assert status == 0
    r = json.loads((rep / "report.json").read_text())
    assert r["model"]["name"] == "mlp-16x16-relu" and r["training"]["final_loss"] < 0.05
    assert r["learned"]["equation"] is None


def test_tolerance_failure_exits_1_and_leaves_files(tmp_path, capsys):
    out = tmp_path / "a" / "model"
    out.mkdir(parents=True)
    (out / "model_info.h").write_text("previous\n")
    before = digest(out)
    status, _, rep = run_build(tmp_path, "--tolerance-lsb", "0.01")
    err = capsys.readouterr().err
    assert status == 1 and "output steps" in err and "--tolerance-lsb" in err
    assert digest(out) == before and not rep.exists()


def test_diverging_training_is_refused(tmp_path, capsys):
    status, out, _ = run_build(tmp_path, "--lr", "5", "--epochs", "200")
    err = capsys.readouterr().err
    assert status == 1 and "training diverged" in err and "--lr" in err
    assert not out.exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status = build.main(["-q", "--out", str(blocker / "model"), "--report-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and "cannot write output" in err and str(blocker) in err
    assert blocker.read_text() == "not a folder"
