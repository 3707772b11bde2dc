"""Affine int8 quantization exactly as TFLM does it at the model's edges."""
from __future__ import annotations

import numpy as np


def round_half_away(x: np.ndarray) -> np.ndarray:
    """TFLM rounds halves away from zero; np.round rounds them to even (1-LSB mismatches)."""
    x = np.asarray(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 code: clamp(round_half_away(x / scale) + zp), division in float32 like TFLM."""
    scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
    return np.clip(round_half_away(scaled) + zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 code -> float32 value, as the firmware prints it."""
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)
