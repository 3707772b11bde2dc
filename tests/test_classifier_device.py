"""A classifier end to end: labelled CSV -> build -> the device (native, native with the
sanitizers, QEMU) -> verify. The data is made here: three blobs in 2-D whose labels need
encoding on the wire (a space, and UTF-8)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import toolchains
from pipeline import build
from pipeline.device import deployed
from pipeline.device.serial_client import Device
from pipeline.device.verify import report, verify
from pipeline.emulation import qemu
from pipeline.emulation.emulate import emulated_device
from pipeline.int8 import oracle

LABELS = ("red apple", "café", "banana")
CENTRES = ((-2.0, 0.0), (2.0, 1.0), (0.0, -2.5))


def blobs(path: Path, rows_per_class: int = 60, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["a,b,fruit"]
    for label, (cx, cy) in zip(LABELS, CENTRES):
        for x, y in rng.normal((cx, cy), 0.6, size=(rows_per_class, 2)):
            lines.append(f"{x:.4f},{y:.4f},{label}")
    order = [lines[0], *rng.permutation(lines[1:])]
    path.write_text("\n".join(order) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("classifier")
    data = blobs(folder / "fruit.csv")
    out = folder / "model"
    status = build.main(["-q", "--no-footprint", "--data", str(data), "--hidden", "8", "--activation", "relu",
                         "--optimizer", "adam", "--lr", "0.02", "--epochs", "300",
                         "--out", str(out), "--report-dir", str(folder / "report")])
    assert status == 0
    return out


TARGETS = {"native": ("native", False), "native-sanitize": ("native", True), "qemu": ("qemu", False)}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def device(request: pytest.FixtureRequest, classifier: Path) -> Iterator[Device]:
    target, sanitize = TARGETS[request.param]
    problem = {"native": toolchains.native_problem, "native-sanitize": toolchains.sanitize_problem,
               "qemu": lambda: qemu.toolchain_problem() or qemu.qemu_problem()}[request.param]()
    if problem:
        pytest.skip(problem)
    with emulated_device(target, sanitize=sanitize, model_dir=classifier, timeout=60.0) as port, \
            Device(port) as opened:
        yield opened


def test_the_build_ships_the_labels_and_the_holdout_rows(classifier: Path) -> None:
    meta = json.loads((classifier / "model.json").read_text(encoding="utf-8"))
    assert meta["task"] == "classify" and meta["outputs"] == 3
    assert sorted(meta["labels"]) == sorted(LABELS)
    assert 0 < len(meta["holdout"]["x"]) == len(meta["holdout"]["labels"]) <= 200
    info = (classifier / "model_info.h").read_text()
    assert '"red%20apple"' in info and '"caf%C3%A9"' in info and "#define MODEL_CLASS_COUNT 3" in info


def test_the_device_says_it_is_a_classifier_and_names_its_labels(device: Device, classifier: Path) -> None:
    model = deployed.load(classifier)
    identity = device.identify()
    assert (identity.task, identity.classes) == ("classify", 3)
    assert device.labels() == list(model.description.labels)
    assert device.request("labels") == "labels " + " ".join(
        {"red apple": "red%20apple", "café": "caf%C3%A9", "banana": "banana"}[label] for label in model.description.labels)


def test_each_value_answer_is_the_probabilities_then_the_top_label(device: Device, classifier: Path) -> None:
    model = deployed.load(classifier)
    device.identify()
    for label, centre in zip(LABELS, CENTRES):
        codes = model.quantize(np.array([centre], dtype=np.float32))
        want = np.asarray(oracle.int8_outputs(model.tflite, codes)[0]).ravel()
        answer = device.predict(list(centre))
        assert answer.text == model.description.answer_text(want)
        assert answer.label == label  # the blobs are far apart: the centre is its own class
        assert abs(sum(answer.values) - 1) < 0.02


def test_verify_passes_and_the_device_accuracy_is_python_s(device: Device, classifier: Path) -> None:
    model = deployed.load(classifier)
    result = verify(device, model)
    assert result.ok, report(result, device.port)
    assert result.mismatches == 0
    names = {c.name for c in result.checks}
    assert {"task", "labels", "hold-out int8", "hold-out top labels"} <= names
    assert result.holdout["device_accuracy"] == result.holdout["python_accuracy"] >= 0.9
    assert "hold-out accuracy over" in report(result, device.port)


def test_the_classifier_s_cost_on_the_cortex_m4(classifier: Path) -> None:
    """The footprint of a model with SOFTMAX (the AOT engine; TFLM too where a tree is given)."""
    problem = qemu.toolchain_problem() or qemu.qemu_problem()
    if problem:
        pytest.skip(problem)
    from pipeline.footprint import measurement
    aot = measurement.measure(classifier)["aot"]
    assert aot["model"] == deployed.load(classifier).description.name
    header = (classifier / "model_aot.h").read_text()
    assert f"#define MODEL_AOT_ARENA_BYTES {aot['arena_bytes']} " in header  # the plan's arena, reported by `id`
    assert aot["ram_bytes"] <= 64 + aot["arena_bytes"]
    assert 0 < aot["instructions_per_inference"] < 20_000 and 0 < aot["flash_bytes"] < 8_192
