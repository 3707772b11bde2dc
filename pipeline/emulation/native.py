"""The native target: the firmware's core and engine compiled for this host, with the host
platform layer serving protocol v1 on a pseudo-terminal of its own."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.emulation import cmake_build, tflm_library
from pipeline.emulation.process import EmulationError
from pipeline.emulation.target import DEVICE_PROGRAMS, BuildOptions, model_folder, model_suffix
from pipeline.paths import BUILD_ROOT, FIRMWARE_DIR


def _find_c_compiler() -> str | None:
    """The compiler CMake would pick up: $CC, else cc, gcc or clang on PATH."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env.split()[0])
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    return None


class NativeTarget:
    """The firmware compiled for this host: core + engine + host platform (a pty)."""

    name = "native"
    programs = DEVICE_PROGRAMS

    def build_dir(self, options: BuildOptions) -> Path:
        if options.build_dir is not None:
            return Path(options.build_dir).resolve()
        suffix = ("-tflm" if options.tflm_root else "") + ("-sanitize" if options.sanitize else "")
        return BUILD_ROOT / f"native{suffix}{model_suffix(options.model_dir)}"

    def build(self, options: BuildOptions) -> list[str]:
        if options.program not in self.programs:
            raise EmulationError(f"unknown native program {options.program!r} "
                                 f"(choose from {', '.join(self.programs)})")
        cmake = shutil.which("cmake")
        if cmake is None or shutil.which("make") is None:
            raise EmulationError("cmake and make not found on PATH: install CMake 3.16 or newer and make "
                                 "(e.g. apt-get install cmake make)")
        build_dir = self.build_dir(options)
        tflm_root = Path(options.tflm_root).resolve() if options.tflm_root else None
        if tflm_root is not None and not tflm_root.is_dir():
            raise EmulationError(f"--tflm-root {tflm_root} is not a directory")
        if not (build_dir / "CMakeCache.txt").is_file() and _find_c_compiler() is None:
            raise EmulationError("no C compiler found ($CC, cc, gcc or clang): install one "
                                 "(e.g. apt-get install gcc)")
        model_dir = model_folder(options.model_dir, tflm=tflm_root is not None)
        archive = (tflm_library.library("native-sanitize" if options.sanitize else "native", tflm_root,
                                        options.verbose) if tflm_root else "")
        settings = {"source": str(FIRMWARE_DIR), "sanitize": options.sanitize,
                    "tflm_root": str(tflm_root) if tflm_root else "", "tflm_library": str(archive),
                    "model_dir": str(model_dir)}
        try:
            cmake_build.build(cmake, FIRMWARE_DIR, build_dir, settings,
                              [f"-DSANITIZE={'ON' if options.sanitize else 'OFF'}", f"-DTFLM_ROOT={settings['tflm_root']}",
                               f"-DTFLM_LIBRARY={archive}", f"-DTINYML_MODEL_DIR={model_dir}"],
                              options.program, "the native emulator", options.verbose)
        except cmake_build.BuildError as error:
            raise EmulationError(str(error)) from None
        exe = build_dir / options.program
        if not exe.is_file():
            raise EmulationError(f"the build finished but {exe} is missing")
        return [str(exe)]
