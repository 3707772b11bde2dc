"""Atomic file output: a failed or interrupted build never leaves half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output folder cannot be written."""


def write_all(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """Stages every file beside its target first, then renames them all: old set or new set, never a torn file."""
    directory = Path(directory)
    staged: list[tuple[str, Path]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((tmp, directory / name))
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{directory}: cannot write output: {exc.strerror or exc}") from None
    written = []
    for tmp, target in staged:
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        written.append(target)
    return written
