"""Captures what native libraries write straight to a file descriptor (TFLM, the TFLite converter)."""
from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def fd_output(fd: int = 2) -> Iterator[list[str]]:
    """Yields a list that holds, after the block, everything written to `fd` meanwhile."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(fd)
        try:
            os.dup2(sink.fileno(), fd)
            yield text
        finally:
            ctypes.CDLL(None).fflush(None)
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))
