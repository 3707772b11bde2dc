"""Refusals that must cost no TensorFlow import: checked in a fresh interpreter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def assert_refused_before_tensorflow(cases: list[list[str]]) -> None:
    """Each argument list makes build.main exit 2 with one error line, and TensorFlow stays unimported."""
    script = ("import sys\nfrom pipeline import build\n"
              f"for args in {cases!r}:\n"
              "    assert build.main(args + ['--out', '/nonexistent/m']) == 2, args\n"
              "    assert 'tensorflow' not in sys.modules, args\n"
              "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.stdout == "ok\n", run.stderr
    assert len(run.stderr.strip().splitlines()) == len(cases)
