"""The whole build: files, report, determinism, the lesson's x = 10, refusals that leave files untouched."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline import build, paths
from pipeline.device import deployed
from pipeline.model import quantize
from pipeline.int8 import reference
from pipeline.int8 import tflite_model
import trained

EMITTED = {"model_data.h", "model_data.cpp", "model_info.h", "model_aot.h", "model.json", "model.tflite"}


def run_build(tmp_path: Path, *args: str, name: str = "a", footprint: bool = False) -> tuple[int, Path, Path]:
    out, rep = tmp_path / name / "model", tmp_path / name / "report"
    status = build.main(["-q", "--footprint" if footprint else "--no-footprint", *args, "--out", str(out),
                         "--report-dir", str(rep)])
    return status, out, rep


def test_report_has_the_footprint_on_cortex_m4(tmp_path):
    from pipeline.emulation import qemu
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
    assert codes[:, 0].tolist() == list(range(-128, 128))
    assert m.input_range == (-1.0, 12.0) and m.meta["ops"] == ["FULLY_CONNECTED"]
    assert m.probes[:, 0].tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 10.0]
    assert m.meta["tolerance"] == {"max_lsb": 4.0}


def test_model_json_is_compact(default_build):
    """The one-input sweep is derived, not listed, and each list is one line: a page, not 1,300 lines."""
    out, _ = default_build
    text = (out / "model.json").read_text()
    meta = json.loads(text)
    assert meta["sweep"]["codes"] == "all" and len(meta["sweep"]["float"]) == 256
    assert len(text.splitlines()) < 30
    assert '"probes": [[-1.0], [0.0], [1.0], [2.0], [3.0], [4.0], [10.0]]' in text


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
    from pipeline.int8 import quant
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
    assert status == 1 and "output steps" in err and "--tolerance-lsb" in err and "at x = " in err
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


# -- the check judges the calibrated range; the default tolerance scales with depth ------------

def write_csv(path: Path, xs, ys) -> Path:
    path.write_text("x,y\n" + "".join(f"{x:.6g},{y:.6g}\n" for x, y in zip(xs, ys)))
    return path


def noisy_sine(path: Path) -> Path:
    """The README's example data: 1000 points of sin(x) on [0, 2 pi] with noise 0.1, seeded."""
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 2 * np.pi, 1000)
    return write_csv(path, xs, np.sin(xs) + rng.normal(0, 0.1, 1000))


def test_data_that_excludes_zero_builds(tmp_path, capsys):
    """x on [1, 3]: the int8 grid reaches down to 0, where the int8 output saturates; those codes
    are no inputs of the model, so they must not fail it (they did, at 28 steps)."""
    path = write_csv(tmp_path / "three.csv", [1, 2, 3], [1, 3, 5])
    status, out, rep = run_build(tmp_path, "--data", str(path))
    assert status == 0, capsys.readouterr().err
    c = json.loads((rep / "report.json").read_text())["check"]
    assert c["errors"]["max_lsb"] <= c["tolerance_lsb"] == 4.0
    assert c["sweep_errors"]["max_lsb"] > 20 and c["sweep_count"] == 256  # all codes, outside the data too


def test_perfect_fit_away_from_zero_builds(tmp_path, capsys):
    """y = 0.5x - 3 on x = 10..20, fitted exactly: the grid's codes below 10 once cost 109 steps."""
    path = write_csv(tmp_path / "line.csv", range(10, 21), [0.5 * x - 3 for x in range(10, 21)])
    status, _, rep = run_build(tmp_path, "--data", str(path), "--optimizer", "adam", "--lr", "0.05", "--epochs", "2000")
    assert status == 0, capsys.readouterr().err
    r = json.loads((rep / "report.json").read_text())
    assert r["learned"]["equation"][0] == "y = 0.5000x - 3.0000"
    assert r["check"]["errors"]["max_lsb"] <= 1.5


def test_too_far_names_the_worst_x(default_build, tmp_path, capsys):
    """The message names the x where int8 is farthest, with both answers there; they are the model's."""
    out, rep = default_build
    status, _, _ = run_build(tmp_path, "--tolerance-lsb", "0.5")
    err = capsys.readouterr().err
    assert status == 1
    found = re.search(r"is (\S+) output steps \((\S+)\) from the float model at x = (\S+) \(float (\S+), int8 (\S+)\), "
                      r"inside the calibrated range \[-1, 12\]", err)
    assert found, err
    steps, x, f, q = float(found[1]), float(found[3]), float(found[4]), float(found[5])
    r = json.loads((rep / "report.json").read_text())
    assert steps == round(r["check"]["errors"]["max_lsb"], 2) and -1 <= x <= 12
    w, b = r["learned"]["layers"][0]["weights"][0][0], r["learned"]["layers"][0]["biases"][0]
    assert f == pytest.approx(w * x + b, abs=1e-3)
    m = deployed.load(out)
    int8 = m.dequantize(reference.run(tflite_model.read(m.tflite), m.quantize(np.array([[x]]))))[0, 0]
    assert q == pytest.approx(float(int8), abs=1e-4)
    assert abs(q - f) / m.output_scale == pytest.approx(steps, abs=0.02)


def test_default_tolerance_scales_with_depth():
    from pipeline.model import check
    assert check.default_tolerance_lsb(()) == 4.0
    assert check.default_tolerance_lsb((2,)) == 16.0
    assert check.default_tolerance_lsb((16, 16)) == 28.0
    assert check.default_tolerance_lsb((64, 64)) == 28.0  # width: no measured effect
    assert check.default_tolerance_lsb((8, 8, 8)) == 40.0


def readme_build_commands(given_models: bool = False) -> list[list[str]]:
    """Every `python -m pipeline.build ...` line of the README's and docs/' examples: those that train,
    or (given_models) those that deploy a --keras or --tflite model (test_given_model makes their files)."""
    import shlex
    text = "\n".join(page.read_text() for page in [paths.ROOT / "README.md", *sorted((paths.ROOT / "docs").glob("*.md"))])
    lines = [line.split("#")[0].split() for line in text.splitlines() if line.startswith("python -m pipeline.build")]
    return [shlex.split(" ".join(words[3:])) for words in lines if "--help" not in words
            and given_models == bool({"--keras", "--tflite"} & set(words))]


@pytest.mark.parametrize("args", readme_build_commands(), ids=" ".join)
def test_every_readme_example_builds_with_the_defaults(args, tmp_path, capsys):
    args = [str(noisy_sine(tmp_path / "mine.csv")) if a == "mine.csv" else a for a in args]
    status, out, _ = run_build(tmp_path, *args)
    err = capsys.readouterr().err
    assert status == 0, err
    assert "warning" not in err
    if "--data" in args:
        assert deployed.load(out).meta["tolerance"]["max_lsb"] == 28.0


def test_a_model_that_underfits_warns_and_builds(tmp_path, capsys):
    """One neuron on a sine: int8 matches float, but float itself misses the data."""
    status, _, rep = run_build(tmp_path, "--data", str(noisy_sine(tmp_path / "sine.csv")))
    err = capsys.readouterr().err
    assert status == 0
    warning, = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert "variance unexplained" in warning and "1 - R^2 = 0.4" in warning
    assert json.loads((rep / "report.json").read_text())["check"]["warnings"] == [warning[len("warning: "):]]


# -- probes: the inputs the build prints and verify types belong to the model --------------

def test_a_csv_probes_its_own_data(tmp_path, capsys):
    path = write_csv(tmp_path / "line.csv", [1, 2, 3, 4, 5, 6, 7, 8, 9], [2 * x for x in range(1, 10)])
    out, rep = tmp_path / "m", tmp_path / "r"
    assert build.main(["--no-footprint", "--data", str(path), "--out", str(out), "--report-dir", str(rep)]) == 0
    text = capsys.readouterr().out
    probes = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]  # min, quartiles, max of the data; 9 + (9 - 1) / 4 beyond
    assert deployed.load(out).probes[:, 0].tolist() == probes
    printed = re.findall(r"^x = (\S+): float \S+, int8 \S+( \(clipped\))?$", text, re.M)
    assert printed == [(f"{p:g}", " (clipped)" if p > 9 else "") for p in probes]
    r = json.loads((rep / "report.json").read_text())
    assert [p["x"] for p in r["check"]["points"]] == [[p] for p in probes] and r["lesson"] is None


def test_verify_types_the_models_probes(tmp_path):
    from pipeline.device import verify
    status, out, _ = run_build(tmp_path, "--data", str(write_csv(tmp_path / "d.csv", [1, 2, 3], [1, 3, 5])))
    assert status == 0
    queries = verify.float_queries(deployed.load(out))[:, 0].tolist()
    assert queries == [1.0, 2.0, 3.0, 3.5, 4.0]  # probes 1, 2, 3, 3.5; range ends 1, 3; 3 + 1 past the top


def test_verify_does_not_depend_on_the_model_side():
    import subprocess
    import sys
    code = "import sys, pipeline.verify; sys.exit('pipeline.data' in sys.modules or 'tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT).returncode == 0


def test_several_inputs_probe_quantiles_and_one_row_past_the_range(tmp_path):
    from pipeline.device import verify
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 2, size=(50, 2))
    path = tmp_path / "two.csv"
    path.write_text("a,b,y\n" + "".join(f"{a:.3f},{b:.3f},{a - 2 * b + 1:.4f}\n" for a, b in x))
    status, out, rep = run_build(tmp_path, "--data", str(path))
    assert status == 0
    m = deployed.load(out)
    probes = m.probes
    assert probes.shape == (6, 2)  # min, quartiles and max per input, then one row past the range
    assert np.all(m.inside(probes[:5])) and not m.inside(probes[5:])[0]
    points = json.loads((rep / "report.json").read_text())["check"]["points"]
    assert [p["clipped"] for p in points] == [False] * 5 + [True]
    queries = verify.float_queries(m).tolist()
    assert all(row in queries for row in probes.tolist())
