"""The model as deployed: what the emitted firmware sources hold, read back by host tools.

`firmware/model/model.json` and `model.tflite` sit beside the C sources, so a fresh
clone can predict and verify without TensorFlow or a build folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.int8 import quant
from pipeline.paths import MODEL_DIR



class DeployedModelError(RuntimeError):
    """The emitted model files are missing or disagree with each other."""


@dataclass(frozen=True)
class DeployedModel:
    meta: dict[str, Any]
    tflite: bytes

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def inputs(self) -> int:
        return int(self.meta["inputs"])

    @property
    def outputs(self) -> int:
        return int(self.meta["outputs"])

    @property
    def input_range(self) -> tuple[float, float]:
        lo, hi = self.meta["input_range"]
        return float(lo), float(hi)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        q = self.meta["input"]
        return quant.quantize(x, q["scale"], q["zero_point"])

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        q = self.meta["output"]
        return quant.dequantize(codes, q["scale"], q["zero_point"])

    @property
    def output_scale(self) -> float:
        return float(self.meta["output"]["scale"])

    def input_values(self, codes: np.ndarray) -> np.ndarray:
        """int8 input codes -> the float inputs they stand for."""
        q = self.meta["input"]
        return quant.dequantize(codes, q["scale"], q["zero_point"])

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Rows of float inputs inside the calibrated range, compared in float32 as the firmware does."""
        lo, hi = (np.float32(v) for v in self.input_range)
        x32 = np.asarray(x, dtype=np.float32).reshape(-1, self.inputs)
        return np.all((x32 >= lo) & (x32 <= hi), axis=1)

    @property
    def probes(self) -> np.ndarray:
        """The float inputs the build printed for this model, [n, inputs]."""
        return np.asarray(self.meta.get("probes", []), dtype=np.float64).reshape(-1, self.inputs)

    @property
    def sweep(self) -> tuple[np.ndarray, np.ndarray]:
        """The check sweep: int8 input codes [n, inputs] and Keras float outputs [n, outputs].
        Codes "all" stand for every code -128..127 of a one-input model, in order."""
        s = self.meta["sweep"]
        codes = np.arange(-128, 128) if s["codes"] == "all" else s["codes"]
        return (np.asarray(codes, dtype=np.int8).reshape(-1, self.inputs),
                np.asarray(s["float"], dtype=np.float32).reshape(-1, self.outputs))


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
    return DeployedModel(meta, data)
