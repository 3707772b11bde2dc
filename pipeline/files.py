"""Atomic file output: a failed or interrupted build never leaves half a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output folder cannot be written."""


def write_all(files: dict[Path, bytes]) -> list[Path]:
    """Stages every file beside its target first, then renames them all: a folder that cannot
    be written stops the build before any file changes, and no file is ever torn."""
    staged: list[tuple[str, Path]] = []
    directory = None
    try:
        for target, content in files.items():
            directory = Path(target).parent
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(target).name}.", suffix=".tmp", dir=directory)
            staged.append((tmp, Path(target)))
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
