"""Affine int8 quantization exactly as TFLM does it at the model's edges."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.int8.tflite_model import TfliteModel


def round_half_away(x: np.ndarray) -> np.ndarray:
    """TFLM rounds halves away from zero; np.round rounds them to even (1-LSB mismatches). From the
    exact fraction x - trunc(x), as the firmware's quantize_input: floor(|x| + 0.5) rounds 0.49999997
    (in float32) up, the sum being rounded to 1."""
    x = np.asarray(x)
    whole = np.trunc(x)
    fraction = x - whole
    return whole + (fraction >= 0.5) - (fraction <= -0.5)


def quantize(x: np.ndarray, scale: float, zero_point: int, center: float = 0.0) -> np.ndarray:
    """float -> int8 code: clamp(round_half_away((x - center) / scale) + zp), the subtraction and the
    division in float32 as the firmware's quantize_input computes them (x - 0 is x: no center, TFLM's)."""
    scaled = (np.asarray(x, dtype=np.float32) - np.float32(center)) / np.float32(scale)
    return np.clip(round_half_away(scaled) + zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 code -> float32 value, as the firmware prints it."""
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def input_codes(tfl: TfliteModel, x: np.ndarray) -> np.ndarray:
    """A model's float inputs -> its input codes, as the device quantizes them (its center included)."""
    return quantize(x, float(tfl.input.scales[0]), int(tfl.input.zero_points[0]), tfl.input_center)


def input_values(tfl: TfliteModel, codes: np.ndarray) -> np.ndarray:
    """A model's input codes -> the float inputs they stand for (the center added back, in float64)."""
    values = dequantize(codes, float(tfl.input.scales[0]), int(tfl.input.zero_points[0]))
    return values.astype(np.float64) + tfl.input_center if tfl.input_center else values
