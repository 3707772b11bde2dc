"""The model as deployed: what the emitted firmware sources hold, read back by host tools.

`firmware/model/model.json` and `model.tflite` sit beside the C sources, so a fresh
clone can predict and verify without TensorFlow or a build folder.
"""
from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.device import model_json
from pipeline.device.model_json import DeployedModelError
from pipeline.int8 import tflite_model
from pipeline.int8.description import ModelDescription
from pipeline.int8.sweep import Sweep
from pipeline.paths import MODEL_DIR


@dataclass(frozen=True, eq=False)
class DeployedModel:
    """The description the build wrote, its flatbuffer, and the inputs verify sends."""

    description: ModelDescription
    tflite: bytes
    probes: np.ndarray
    """The float inputs the build printed for this model, [n, inputs]."""
    sweep_rows: Sweep
    """The check's int8 input code rows that verify sends (made row by row where they are seeded)."""
    sweep_float: np.ndarray | None
    """The float model's outputs for those rows, [n, outputs], as model.json holds them; None for an
    int8 model deployed without its float model (nothing to judge the float answers by)."""
    holdout_x: np.ndarray | None = None
    """A classifier's hold-out rows, float inputs [n, inputs], which training never saw."""
    holdout_labels: np.ndarray | None = None
    """Their true class indices [n]."""
    board: dict[int, np.ndarray] = field(default_factory=dict)
    """Sweep rows the board's TFLM library answers otherwise than the runtime, with its answers
    (int8 [outputs] by row index): what a TFLM device must answer there."""

    @property
    def id(self) -> str:
        return self.description.id

    @property
    def inputs(self) -> int:
        return self.description.inputs

    @property
    def outputs(self) -> int:
        return self.description.outputs

    @property
    def input_range(self) -> tuple[float, float]:
        return self.description.input_range

    @property
    def output_scale(self) -> float:
        return self.description.output_scale

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return self.description.quantize(x)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        return self.description.dequantize(codes)

    def input_values(self, codes: np.ndarray) -> np.ndarray:
        return self.description.input_values(codes)

    def inside(self, x: np.ndarray) -> np.ndarray:
        return self.description.inside(x)

    @property
    def sweep_codes(self) -> np.ndarray:
        """Every sweep row at once, [n, inputs] (verify sends them in chunks instead)."""
        return self.sweep_rows.rows()

    @property
    def sweep(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The check sweep: int8 input codes [n, inputs] and float outputs [n, outputs] in float32 (or None)."""
        return self.sweep_codes, None if self.sweep_float is None else self.sweep_float.astype(np.float32)

    @property
    def meta(self) -> dict[str, Any]:
        """model.json's content, for tools that pass it on as JSON."""
        board = ({"board": {"rows": sorted(self.board), "outputs": [self.board[k].tolist() for k in sorted(self.board)]}}
                 if self.board else {})
        return {**self.description.to_json(), "probes": self.probes.tolist(),
                "sweep": {**self.sweep_rows.to_json(),
                          "float": None if self.sweep_float is None else self.sweep_float.tolist(), **board},
                **({"holdout": {"x": self.holdout_x.tolist(), "labels": self.holdout_labels.tolist()}}
                   if self.holdout_x is not None else {})}


def load(directory: Path = MODEL_DIR) -> DeployedModel:
    """The model in directory, its model.json checked field by field (pipeline.device.model_json)
    before anything uses it, and bound to model.tflite by its SHA-256 and tensors."""
    meta_path, model_path = directory / "model.json", directory / "model.tflite"
    for path in (meta_path, model_path):
        _regular(path)
    meta = model_json.parse(_read(meta_path), meta_path)
    data = _read(model_path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise DeployedModelError(f"{model_path}: SHA-256 {digest[:12]} differs from model.json's {meta['sha256'][:12]}")
    _same_tensors(meta, meta_path, data, model_path)
    try:
        description = ModelDescription.from_json(meta)
        sweep = meta["sweep"]
        rows = Sweep.from_json(sweep, description.inputs)
        outputs = (None if sweep["float"] is None
                   else np.asarray(sweep["float"], dtype=np.float64).reshape(-1, description.outputs))
        board = _board(sweep.get("board"), len(rows), description.outputs)
        probes = np.asarray(meta.get("probes", []), dtype=np.float64).reshape(-1, description.inputs)
        holdout_x = holdout_labels = None
        if "holdout" in meta:
            holdout_x = np.asarray(meta["holdout"]["x"], dtype=np.float64).reshape(-1, description.inputs)
            holdout_labels = np.asarray(meta["holdout"]["labels"], dtype=np.int64)
    except (KeyError, ValueError) as bad:  # model_json.check has refused all it knows of
        raise DeployedModelError(f"{meta_path}: {bad}") from None
    if outputs is not None and not _any_inside(description, rows):
        raise DeployedModelError(f"{meta_path}: sweep: no row lies inside input_range, so verify has no "
                                 "float answer to judge the tolerance by")
    return DeployedModel(description, data, probes, rows, outputs, holdout_x, holdout_labels, board)


def _regular(path: Path) -> None:
    """A regular file, judged without opening it: a FIFO named model.json would block the read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DeployedModelError(f"{path}: missing; run python -m pipeline.build") from None
    except OSError as error:
        raise DeployedModelError(f"{path}: cannot read: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise DeployedModelError(f"{path}: {'is a directory' if stat.S_ISDIR(mode) else 'not a regular file'}, "
                                 "not what python -m pipeline.build writes")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise DeployedModelError(f"{path}: cannot read: {error.strerror}") from None


def _same_tensors(meta: dict[str, Any], meta_path: Path, data: bytes, model_path: Path) -> None:
    """model.json's shape and affine maps are model.tflite's: the device runs the flatbuffer, and
    predict and verify quantize by the file."""
    try:
        tfl = tflite_model.read(data)
        tensors = {"input": tfl.input, "output": tfl.output}
    except tflite_model.ModelFormatError as error:
        raise DeployedModelError(f"{model_path}: {error}") from None
    for side, tensor in tensors.items():
        width = math.prod(tensor.shape[1:]) if len(tensor.shape) > 1 else 1
        count = meta[f"{side}s"]
        if count != width:
            raise DeployedModelError(f"{meta_path}: {side}s: {count}, but model.tflite's {side} tensor holds {width}")
        if tensor.scales.size != 1 or tensor.zero_points.size != 1:
            continue  # refused at build time; the device reports what it runs
        scale, zero_point = float(tensor.scales[0]), int(tensor.zero_points[0])
        if np.float32(meta[side]["scale"]) != np.float32(scale):
            raise DeployedModelError(f"{meta_path}: {side}.scale: {meta[side]['scale']:g}, but model.tflite's is {scale:g}")
        if meta[side]["zero_point"] != zero_point:
            raise DeployedModelError(f"{meta_path}: {side}.zero_point: {meta[side]['zero_point']}, "
                                     f"but model.tflite's is {zero_point}")


def _any_inside(description: ModelDescription, rows: Sweep) -> bool:
    """Whether any sweep row's inputs lie inside the calibrated range (verify judges the floats there)."""
    return any(bool(description.inside(description.input_values(chunk)).any()) for _, chunk in rows.chunks(4096))


def _board(board: dict[str, Any] | None, rows: int, outputs: int) -> dict[int, np.ndarray]:
    """model.json's sweep.board: {"rows": [row index, ...], "outputs": [[int8 codes], ...]}."""
    if not board:
        return {}
    indices = [int(k) for k in board["rows"]]
    answers = np.asarray(board["outputs"], dtype=np.int64).reshape(len(indices), outputs)
    if any(not 0 <= k < rows for k in indices) or np.any((answers < -128) | (answers > 127)):
        raise ValueError("sweep board rows or answers out of range")
    return {k: answers[i].astype(np.int8) for i, k in enumerate(indices)}
