"""The model as deployed: what the emitted firmware sources hold, read back by host tools.

`firmware/model/model.json` and `model.tflite` sit beside the C sources, so a fresh
clone can predict and verify without TensorFlow or a build folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.int8.description import ModelDescription
from pipeline.int8.sweep import Sweep
from pipeline.paths import MODEL_DIR
from pipeline.errors import BadInput


class DeployedModelError(BadInput, RuntimeError):
    """The emitted model files are missing or disagree with each other."""


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
    meta_path, model_path = directory / "model.json", directory / "model.tflite"
    for path in (meta_path, model_path):
        if not path.is_file():
            raise DeployedModelError(f"{path}: missing; run python -m pipeline.build")
    meta = json.loads(meta_path.read_text())
    data = model_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("sha256"):
        raise DeployedModelError(f"{model_path}: SHA-256 {digest[:12]} differs from model.json's {str(meta.get('sha256'))[:12]}")
    try:
        description = ModelDescription.from_json(meta)
        sweep = meta["sweep"]
        rows = Sweep.from_json(sweep, description.inputs)
        outputs = (None if sweep["float"] is None
                   else np.asarray(sweep["float"], dtype=np.float64).reshape(-1, description.outputs))
        board = _board(sweep.get("board"), len(rows), description.outputs)
        if (outputs is None) != (description.tolerance_lsb is None):
            raise ValueError("sweep float outputs and a tolerance go together: one is missing")
        probes = np.asarray(meta.get("probes", []), dtype=np.float64).reshape(-1, description.inputs)
        holdout_x = holdout_labels = None
        if "holdout" in meta:
            holdout_x = np.asarray(meta["holdout"]["x"], dtype=np.float64).reshape(-1, description.inputs)
            holdout_labels = np.asarray(meta["holdout"]["labels"], dtype=np.int64)
            if len(holdout_labels) != len(holdout_x) or not np.all((0 <= holdout_labels)
                                                                   & (holdout_labels < description.classes)):
                raise ValueError("holdout labels do not match its rows and the classes")
    except KeyError as missing:
        raise DeployedModelError(f"{meta_path}: no {missing.args[0]!r}") from None
    except ValueError as bad:
        raise DeployedModelError(f"{meta_path}: {bad}") from None
    if outputs is not None and len(rows) != len(outputs):
        raise DeployedModelError(f"{meta_path}: {len(rows)} sweep rows but {len(outputs)} float outputs")
    return DeployedModel(description, data, probes, rows, outputs, holdout_x, holdout_labels, board)


def _board(board: dict[str, Any] | None, rows: int, outputs: int) -> dict[int, np.ndarray]:
    """model.json's sweep.board: {"rows": [row index, ...], "outputs": [[int8 codes], ...]}."""
    if not board:
        return {}
    indices = [int(k) for k in board["rows"]]
    answers = np.asarray(board["outputs"], dtype=np.int64).reshape(len(indices), outputs)
    if any(not 0 <= k < rows for k in indices) or np.any((answers < -128) | (answers > 127)):
        raise ValueError("sweep board rows or answers out of range")
    return {k: answers[i].astype(np.int8) for i, k in enumerate(indices)}
