"""Float-vs-int8 error figures, the set ST Edge AI reports for on-target validation."""
from __future__ import annotations

import numpy as np


def compare(expected: np.ndarray, actual: np.ndarray, output_scale: float) -> dict[str, float]:
    """Errors of `actual` against `expected`, in output units and in output LSBs."""
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    if e.shape != a.shape or e.size == 0:
        raise ValueError(f"compare needs two equal, non-empty sets, got {e.size} and {a.size} values")
    diff = a - e
    max_abs = float(np.max(np.abs(diff)))
    norm = float(np.linalg.norm(e))
    norms = norm * float(np.linalg.norm(a))
    return {
        "count": int(e.size),
        "mae": float(np.mean(np.abs(diff))),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "max_abs": max_abs,
        "max_lsb": max_abs / output_scale,
        "l2_relative": float(np.linalg.norm(diff) / norm) if norm > 0 else float(np.linalg.norm(diff)),
        "cosine": float(np.dot(e, a) / norms) if norms > 0 else 1.0,
    }
