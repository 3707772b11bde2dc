"""TinyML deployment pipeline: (x, y) data -> Keras -> int8 TFLite -> firmware sources -> verified device."""
from __future__ import annotations

import sys


def _interrupt_policy() -> None:
    """For `python -m pipeline.X` (this package is imported first, while sys.argv[0] is "-m"):
    Ctrl-C anywhere, imports included, ends with the one line `interrupted` on stderr and exit
    status 130. Unhandled, a KeyboardInterrupt prints a traceback and Python then kills itself
    with SIGINT (status -2 to a parent process, not 130); here the hook prints the line and the
    last exit handler, once every cleanup has run (finally blocks, other exit handlers), exits 130."""
    import atexit
    import os
    import signal

    interrupted = []

    def hook(kind, value, traceback) -> None:
        if issubclass(kind, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot break the exit
            interrupted.append(True)
            print("interrupted", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    def exit_130() -> None:
        if interrupted:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(130)

    previous = sys.excepthook
    sys.excepthook = hook
    atexit.register(exit_130)  # registered first, so it runs last


if sys.argv[:1] == ["-m"]:
    _interrupt_policy()
