"""CMake builds for the emulators: configured again only when their settings change,
built incrementally, one build per folder at a time."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipeline.errors import PipelineError


class BuildError(PipelineError, RuntimeError):
    """A build step could not run or failed; its output is on stderr."""


@contextlib.contextmanager
def locked(build_dir: Path) -> Iterator[None]:
    """Parallel test runs, a tool and a test may build the same folder."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".build.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_logged(cmd: Sequence[str], what: str, verbose: bool) -> None:
    """Runs a build step. Its output goes to stderr (never stdout: an emulator's port line
    must be the first thing there), streamed when verbose, else only if the step fails.
    The step runs in its own process group, so an interrupt stops make's compilers too."""
    try:
        process = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, start_new_session=True,
                                   stdout=2 if verbose else subprocess.PIPE,
                                   stderr=None if verbose else subprocess.STDOUT)
    except OSError as error:
        raise BuildError(f"{what}: cannot run {cmd[0]}: {error.strerror}") from error
    try:
        output, _ = process.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise
    if process.returncode != 0:
        text = (output or b"").decode("utf-8", "replace")
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()
        raise BuildError(f"{what} failed (exit status {process.returncode}): {first_errors(text)}")


def first_errors(output: str, limit: int = 3) -> str:
    """The compiler's or CMake's own error lines, so a failed sub-build says why in its message."""
    errors = [line.strip() for line in output.splitlines()
              if "error" in line.lower() and not line.lstrip().startswith(("make", "gmake", "ninja"))]
    if not errors:
        errors = [line.strip() for line in output.splitlines() if line.strip()][-limit:]
    return " | ".join(errors[:limit]) or "no output (see above on stderr)"


def build(cmake: str, source: Path, build_dir: Path, settings: dict[str, Any], configure_args: Sequence[str],
          target: str, label: str, verbose: bool) -> None:
    """Configures when `settings` differ from the last configure's (kept in a stamp), then builds target."""
    stamp = build_dir / "build-settings.json"
    with locked(build_dir):
        try:
            current = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            current = None
        if current != settings or not (build_dir / "CMakeCache.txt").is_file():
            stamp.unlink(missing_ok=True)
            run_logged([cmake, "-S", str(source), "-B", str(build_dir), *configure_args],
                       f"configuring {label} (cmake)", verbose)
            stamp.write_text(json.dumps(settings), encoding="utf-8")
        run_logged([cmake, "--build", str(build_dir), "--target", target, "--parallel", str(os.cpu_count() or 2)],
                   f"building {label} (cmake --build)", verbose)
