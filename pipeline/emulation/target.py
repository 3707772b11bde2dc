"""What an emulation target is: how to build it (BuildOptions) and the shape every target
has (Target), plus the model-folder rules both targets share."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.emulation.process import EmulationError
from pipeline.paths import FIRMWARE_DIR

DEVICE_PROGRAMS = ("tinyml_device", "tinyml_device_fault")
"""What an emulation runs: the device, or the same device with an engine that always fails."""


@dataclass(frozen=True)
class BuildOptions:
    """How to build an emulation. build_dir None picks one per option set under build/,
    so switching options never forces a full rebuild of another configuration."""

    sanitize: bool = False
    tflm_root: Path | None = None
    build_dir: Path | None = None
    model_dir: Path | None = None  # the emitted model sources; None: firmware/model
    verbose: bool = False  # stream the build's output to stderr instead of only on failure
    program: str = "tinyml_device"  # one of DEVICE_PROGRAMS


class Target(Protocol):
    """One way to emulate the device: build() returns a command whose first stdout line is
    the serial port it serves (pipeline.emulation.process.launch runs it)."""

    name: str

    def build(self, options: BuildOptions) -> list[str]: ...


def model_folder(model_dir: Path | None, tflm: bool = False) -> Path:
    """The emitted model sources an emulation is built from; refuses a folder without them (the TFLM
    engine also compiles model_data.cpp; the AOT engine's tables are all in model_aot.h)."""
    folder = Path(model_dir).resolve() if model_dir else FIRMWARE_DIR / "model"
    needed = ("model_info.h", "model_aot.h") + (("model_data.cpp",) if tflm else ())
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise EmulationError(f"{folder}: no emitted model ({', '.join(missing)} missing): run python -m pipeline.build"
                             + (f" --out {model_dir}" if model_dir else ""))
    return folder


def model_suffix(model_dir: Path | None) -> str:
    """Each model folder gets build folders of its own, so switching models never rebuilds another's."""
    folder = Path(model_dir).resolve() if model_dir else FIRMWARE_DIR / "model"
    if folder == FIRMWARE_DIR / "model":
        return ""
    return "-" + hashlib.sha256(str(folder).encode()).hexdigest()[:10]
