"""Where the repository keeps things: the firmware sources, the emitted model, the build folders."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = ROOT / "firmware"
MODEL_DIR = FIRMWARE_DIR / "model"
BUILD_ROOT = ROOT / "build"
