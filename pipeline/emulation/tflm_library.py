"""The board's TFLM library compiled once per target and tree, and shared by every firmware build.

Compiling a TFLM tree takes minutes a target; the model changes none of its objects. So the
library has build folders of its own, `build/tflm/<target>-<key>/`, where the key covers what
does change the objects: the target (native, its sanitizer build, or the Cortex-M4), the tree
(its path and a digest of its sources), and the compiler (its path and version). The flags are
the firmware projects' own (the same CMakeLists.txt, configured with TINYML_TFLM_LIBRARY_ONLY),
and CMake recompiles incrementally if they change. Every emulation, verify, footprint and test
build then links that archive (TFLM_LIBRARY) and compiles only the engine and the model.

    archive = library("qemu", Path(".pio/libdeps/nano33ble/Chirale_TensorFLowLite"))
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from pipeline.emulation import cmake_build
from pipeline.emulation.process import EmulationError
from pipeline.paths import BUILD_ROOT, FIRMWARE_DIR

TARGETS = {"native": FIRMWARE_DIR, "native-sanitize": FIRMWARE_DIR, "qemu": FIRMWARE_DIR / "platform" / "qemu"}
"""Each target's CMake project: the firmware's, whose flags the library must share."""
COMPILERS = {"qemu": ("arm-none-eabi-g++",), "native": ("c++", "g++", "clang++")}
"""The C++ compilers CMake picks for each target ($CXX first on the host): the toolchain file's
cross compiler for the Cortex-M4."""
SOURCE_SUFFIXES = (".c", ".cc", ".cpp", ".h", ".hpp")
ARCHIVE = "libtflm_lib.a"
_checked: dict[tuple[str, Path], Path] = {}
"""Archives this process has built or found up to date: make is asked once per target and tree."""


class TflmTreeError(EmulationError):
    """The TFLM tree is not one, or its library did not build; str() is one line."""


def source_dir(tree: Path) -> Path:
    """The folder holding tensorflow/lite/micro: the library's src/, or the tree itself."""
    for candidate in (tree / "src", tree):
        if (candidate / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
            return candidate
    raise TflmTreeError(f"{tree}: not a TFLM library tree (no tensorflow/lite/micro/micro_interpreter.h in it or "
                        "its src/)")


@functools.lru_cache(maxsize=8)
def tree_digest(tree: Path) -> str:
    """SHA-256 over the tree's C and C++ sources and headers (names and bytes): about 8 MB, a few
    tens of milliseconds, once per process."""
    digest = hashlib.sha256()
    root = source_dir(tree)
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _compiler(target: str) -> str:
    """The C++ compiler CMake will use for target, with its version line."""
    if target == "qemu":
        candidates = list(COMPILERS["qemu"])
    else:
        candidates = [os.environ["CXX"].split()[0]] if os.environ.get("CXX", "").strip() else list(COMPILERS["native"])
    for name in candidates:
        found = shutil.which(name)
        if found:
            try:
                version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30,
                                         check=False).stdout.splitlines()[:1]
            except (OSError, subprocess.SubprocessError):
                version = []
            return f"{os.path.realpath(found)} {' '.join(version)}"
    raise TflmTreeError(f"no C++ compiler for the {target} TFLM library ({', '.join(candidates)}): "
                        "install g++ (native) or gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib (qemu)")


def key(target: str, tree: Path) -> dict[str, str]:
    """What the library's objects depend on (and its folder's name is a digest of)."""
    if target not in TARGETS:
        raise TflmTreeError(f"unknown TFLM library target {target!r} (choose from {', '.join(TARGETS)})")
    tree = Path(tree).resolve()
    return {"target": target, "tree": str(tree), "tree_sha256": tree_digest(tree), "compiler": _compiler(target)}


def folder(target: str, tree: Path) -> Path:
    """build/tflm/<target>-<first 12 hex digits of the key's SHA-256>."""
    settings = key(target, tree)
    name = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return BUILD_ROOT / "tflm" / f"{target}-{name}"


def library(target: str, tree: Path, verbose: bool = False) -> Path:
    """The tree's TFLM library for target, built the first time it is asked for (minutes), then
    only checked by make (a second or two). Returns the archive's path."""
    tree = Path(tree).resolve()
    if not tree.is_dir():
        raise TflmTreeError(f"TFLM root {tree} is not a directory")
    known = _checked.get((target, tree))
    if known is not None and known.is_file():
        return known
    settings = key(target, tree)
    build_dir = folder(target, tree)
    cmake = shutil.which("cmake")
    if cmake is None or shutil.which("make") is None:
        raise TflmTreeError("cmake and make not found on PATH: install CMake 3.16 or newer and make "
                            "(apt-get install cmake make)")
    args = [f"-DTFLM_ROOT={tree}", "-DTINYML_TFLM_LIBRARY_ONLY=ON"]
    if target == "native-sanitize":
        args.append("-DSANITIZE=ON")
    try:
        cmake_build.build(cmake, TARGETS[target], build_dir, settings, args, "tflm_lib",
                          f"the {target} TFLM library from {tree.name}", verbose)
    except cmake_build.BuildError as error:
        raise TflmTreeError(str(error)) from None
    archive = build_dir / ARCHIVE
    if not archive.is_file():
        raise TflmTreeError(f"the TFLM library build finished but {archive} is missing")
    (build_dir / "key.json").write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    _checked[(target, tree)] = archive
    return archive
