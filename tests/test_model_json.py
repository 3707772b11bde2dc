"""model.json is input, not trusted: each corrupt variant of the committed one is refused by
predict and verify alike, before anything uses it, in one line naming the field, exit 2, and
with no Python warning on the way (numpy's overflow and cast warnings are errors here)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from pipeline.device import deployed, predict, verify

COMMITTED = Path(__file__).resolve().parent.parent / "firmware" / "model"
NAN, INF = float("nan"), float("inf")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Sets a dotted field (a number part indexes a list)."""
    def change(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = meta
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = meta
        for part in parents:
            node = node[part]
        del node[last]
    return change


class Raw:
    """An edit of the file's bytes rather than of its parsed content."""

    def __init__(self, change: Callable[[bytes], bytes]) -> None:
        self.change = change


def _listed_codes(codes: list[list[int]]) -> Callable[[dict[str, Any]], None]:
    """The one-input sweep as listed rows instead of "all", with a float answer each."""
    def change(meta: dict[str, Any]) -> None:
        meta["sweep"] = {"codes": codes, "float": [[0.0] for _ in codes]}
    return change


# name, the change (a function of the parsed file, or the file's new bytes from the old), the line after "model.json: "
EDITS: list[tuple[str, Any, str]] = [
    ("truncated", Raw(lambda raw: raw[:raw.index(b'"outputs"')]), None),  # expected computed from the cut
    ("NUL bytes", Raw(lambda raw: b"\x00\x00" + raw), "not valid JSON: Expecting value (line 1, column 1)"),
    ("not UTF-8", Raw(lambda raw: raw.replace(b'"neuron"', b'"neur\xffon"')), "not UTF-8 text (byte 16)"),
    ("top-level array", Raw(lambda raw: b"[1, 2]\n"), "the top level is an array, not an object"),
    ("top-level number", Raw(lambda raw: b"7\n"), "the top level is a number, not an object"),
    ("nested too deeply", Raw(lambda raw: b"[" * 200_000), "not valid model.json: nested too deeply"),
    ("an integer too long", Raw(lambda raw: raw.replace(b'"inputs": 1', b'"inputs": 1' + b"0" * 5000)),
     "not valid model.json: an integer too long to read"),
    ("sweep code 999", _listed_codes([[0], [999]]), "sweep.codes[1][0]: 999 is outside -128..127"),
    ("sweep codes a number", _set("sweep.codes", 999), 'sweep.codes: 999 is neither "all" nor a list of rows'),
    ("sweep code a float", _listed_codes([[0.5]]), "sweep.codes[0][0]: 0.5 is not an integer"),
    ("sweep row too wide", _listed_codes([[0, 1]]), "sweep.codes[0]: [0, 1] is not a row of 1 value(s)"),
    ("sweep empty", _listed_codes([]), "sweep: no rows: verify would have nothing to send"),
    ("sweep random seed", lambda m: m["sweep"].update(codes=[], random={"seed": -1, "rows": 4}),
     "sweep.random.seed: -1 is below 0"),
    ("sweep random rows", lambda m: m["sweep"].update(codes=[], random={"seed": 1, "rows": 1 << 30}),
     "sweep.random.rows: 1073741824 is outside 0..1048576"),
    ("NaN probe", _set("probes.2.0", NAN), "probes[2][0]: NaN is not a finite number"),
    ("infinite probe", _set("probes.0.0", -INF), "probes[0][0]: -Infinity is not a finite number"),
    ("probe past float32", _set("probes.1.0", 1e39),
     "probes[1][0]: 1e+39 is too large for the device's float32 quantization (x / input.scale)"),
    ("probe a string", _set("probes.1.0", "3"), 'probes[1][0]: "3" is not a number'),
    ("NaN input center", _set("input_center", NAN), "input_center: NaN is not a finite number"),
    ("input center a string", _set("input_center", "100"), 'input_center: "100" is not a number'),
    ("input center past float32", _set("input_center", 1e39), "input_center: 1e+39 is beyond float32's range"),
    ("range too far from the center", _set("input_center", -3e38),
     "input_range[0]: -1.0 is too large for the device's float32 quantization ((x - input_center) / input.scale)"),
    ("probe row too short", _set("probes.1", []), "probes[1]: [] is not a row of 1 value(s)"),
    ("reversed input range", _set("input_range", [12.0, -1.0]),
     "input_range: [12.0, -1.0]: the low end is not below the high end"),
    ("empty input range", _set("input_range", [3.0, 3.0]),
     "input_range: [3.0, 3.0]: the low end is not below the high end"),
    ("input range of one end", _set("input_range", [3.0]), "input_range: [3.0] is not [low, high]"),
    ("NaN in the input range", _set("input_range", [NAN, 12.0]), "input_range[0]: NaN is not a finite number"),
    ("input range too wide", _set("input_range", [-1.2e37, 1.2e37]),
     "input_range: [-1.2e+37, 1.2e+37]: too wide for float32 inputs (verify types 1.8e+37 just past it, which the "
     "device cannot quantize)"),
    ("input scale 0", _set("input.scale", 0), "input.scale: 0 is not a positive finite float32 scale"),
    ("input scale negative", _set("input.scale", -0.05), "input.scale: -0.05 is not a positive finite float32 scale"),
    ("input scale below float32", _set("input.scale", 1e-50), "input.scale: 1e-50 is not a positive finite float32 scale"),
    ("output scale infinite", _set("output.scale", INF), "output.scale: Infinity is not a finite number"),
    ("output scale NaN", _set("output.scale", NAN), "output.scale: NaN is not a finite number"),
    ("output scale huge", _set("output.scale", 1e37), "output.scale: 1e+37 is not a positive finite float32 scale"),
    ("input scale not the flatbuffer's", _set("input.scale", 0.05),
     "input.scale: 0.05, but model.tflite's is 0.0509804"),
    ("input zero point 200", _set("input.zero_point", 200), "input.zero_point: 200 is outside -128..127"),
    ("output zero point a float", _set("output.zero_point", -99.5), "output.zero_point: -99.5 is not an integer"),
    ("output zero point true", _set("output.zero_point", True), "output.zero_point: true is not an integer"),
    ("output zero point not the flatbuffer's", _set("output.zero_point", -98),
     "output.zero_point: -98, but model.tflite's is -99"),
    ("inputs 0", _set("inputs", 0), "inputs: 0 is below 1"),
    ("inputs a string", _set("inputs", "1"), 'inputs: "1" is not an integer'),
    ("outputs not the flatbuffer's", lambda m: (m.update(outputs=2), m["sweep"].update(
        float=[[v[0], v[0]] for v in m["sweep"]["float"]])), "outputs: 2, but model.tflite's output tensor holds 1"),
    ("input missing", _drop("input"), "input: missing"),
    ("input scale missing", _drop("input.scale"), "input.scale: missing"),
    ("input not an object", _set("input", [0.05, -108]), "input: [0.05, -108] is not an object"),
    ("sweep missing", _drop("sweep"), "sweep: missing"),
    ("name empty", _set("name", ""), 'name: "" is not a non-empty string'),
    ("sha256 not hex", _set("sha256", "x" * 64), f'sha256: "{"x" * 36}... is not 64 lowercase hex digits'),
    ("id not the sha256's", _set("id", "000000000000"),
     'id: "000000000000" is not the first 12 digits of sha256 (05068326d617)'),
    ("ops not a list", _set("ops", "FULLY_CONNECTED"), 'ops: "FULLY_CONNECTED" is not a list'),
    ("per_channel a number", _set("per_channel", 0), "per_channel: 0 is not true or false"),
    ("arena negative", _set("arena_bytes", -1), "arena_bytes: -1 is below 0"),
    ("tolerance NaN", _set("tolerance.max_lsb", NAN), "tolerance.max_lsb: NaN is not a finite number"),
    ("tolerance without floats", _set("sweep.float", None), "sweep.float: null while tolerance.max_lsb is set"),
    ("floats without tolerance", _set("tolerance.max_lsb", None),
     "sweep.float: given while tolerance.max_lsb is null: one goes with the other"),
    ("sweep float NaN", _set("sweep.float.3.0", NAN), "sweep.float[3][0]: NaN is not a finite number"),
    ("sweep float past float32", _set("sweep.float.3.0", 1e300), "sweep.float[3][0]: 1e+300 is beyond float32's range"),
    ("sweep float row missing", lambda m: m["sweep"]["float"].pop(), "sweep.float: 255 rows for the sweep's 256"),
    ("board row out of range", lambda m: m["sweep"].update(board={"rows": [256], "outputs": [[0]]}),
     "sweep.board.rows[0]: 256 is outside 0..255"),
    ("board answer 999", lambda m: m["sweep"].update(board={"rows": [3], "outputs": [[999]]}),
     "sweep.board.outputs[0][0]: 999 is outside -128..127"),
    ("board rows repeat", lambda m: m["sweep"].update(board={"rows": [3, 3], "outputs": [[0], [0]]}),
     "sweep.board.rows: a row repeats"),
    ("task unknown", _set("task", "cluster"), 'task: "cluster" is neither \'regress\' nor \'classify\''),
    ("labels on a regression", _set("labels", ["a"]), "labels: a regression model has no labels"),
    ("a classifier of one output", lambda m: m.update(task="classify", labels=["a"]),
     "labels: 1 classes: a classifier has 2..64"),
    ("label not a string", lambda m: m.update(task="classify", labels=[1]), "labels[0]: 1 is not a non-empty string"),
    ("holdout on a regression", _set("holdout", {"x": [[1.0]], "labels": [0]}),
     "holdout: hold-out rows belong to a classifier; this model regresses"),
    ("no row inside the range", lambda m: m.update(input_range=[100.0, 200.0]) or m.update(probes=[]),
     "sweep: no row lies inside input_range, so verify has no float answer to judge the tolerance by"),
]


@pytest.fixture(scope="module")
def committed() -> tuple[bytes, bytes]:
    return (COMMITTED / "model.json").read_bytes(), (COMMITTED / "model.tflite").read_bytes()


def _folder(tmp_path: Path, committed: tuple[bytes, bytes], edit: Any) -> Path:
    raw, tflite = committed
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(tflite)
    if isinstance(edit, Raw):
        data = edit.change(raw)
    else:
        meta = json.loads(raw)
        before = json.dumps(meta)
        edit(meta)
        assert json.dumps(meta) != before, "the edit changed nothing"
        data = json.dumps(meta, indent=1).encode()
    (folder / "model.json").write_bytes(data)
    return folder


def _truncated_expected(raw: bytes) -> str:
    cut = raw[:raw.index(b'"outputs"')].decode()
    line = cut.count("\n") + 1
    column = len(cut) - (cut.rfind("\n") + 1) + 1
    return f"not valid JSON: Expecting property name enclosed in double quotes (line {line}, column {column})"


def _refusal(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning would turn into an exception: a bug line, not ours
        status = main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.mark.parametrize("edit,expected", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_a_corrupt_model_json_is_refused_in_one_line(tmp_path: Path, committed: tuple[bytes, bytes],
                                                     capsys: pytest.CaptureFixture[str], edit: Any,
                                                     expected: str | None) -> None:
    folder = _folder(tmp_path, committed, edit)
    expected = expected or _truncated_expected(committed[0])
    line = f"error: {folder / 'model.json'}: {expected}\n"
    assert _refusal(predict.main, ["--model-dir", str(folder), "1"], capsys) == (2, "", line)
    assert _refusal(verify.main, ["--model-dir", str(folder), "--port", os.devnull], capsys) == (2, "", line)
    with pytest.raises(deployed.DeployedModelError) as refused:
        deployed.load(folder)
    assert str(refused.value) == line[len("error: "):-1]


def test_the_committed_model_json_passes(committed: tuple[bytes, bytes], tmp_path: Path) -> None:
    """The check refuses what is wrong, not what the build writes."""
    folder = _folder(tmp_path, committed, Raw(lambda raw: raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = deployed.load(folder)
    assert (model.inputs, model.outputs, len(model.sweep_rows), len(model.probes)) == (1, 1, 256, 7)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_model_json_that_is_no_file_is_refused_without_opening_it(tmp_path: Path, committed: tuple[bytes, bytes],
                                                                    capsys: pytest.CaptureFixture[str], kind: str) -> None:
    folder = _folder(tmp_path, committed, Raw(lambda raw: raw))
    (folder / "model.json").unlink()
    if kind == "directory":
        (folder / "model.json").mkdir()
        what = "is a directory"
    else:
        os.mkfifo(folder / "model.json")  # opening it would block: the check must only stat it
        what = "not a regular file"
    line = f"error: {folder / 'model.json'}: {what}, not what python -m pipeline.build writes\n"
    assert _refusal(predict.main, ["--model-dir", str(folder), "1"], capsys) == (2, "", line)
    assert _refusal(verify.main, ["--model-dir", str(folder), "--port", os.devnull], capsys) == (2, "", line)


def test_verify_types_past_the_range_what_the_check_allowed() -> None:
    """The check and verify's query past the range share one formula."""
    from pipeline.device import model_json
    model = deployed.load(COMMITTED)
    queries = verify.float_queries(model)
    assert queries[-1, 0] == model_json.past_range(*model.input_range) == 12.0 + 13.0 / 4
