"""TinyML deployment pipeline: (x, y) data -> Keras -> int8 TFLite -> firmware sources -> verified device."""
from __future__ import annotations

import sys

_interrupts: list[bool] = []
_installed: list[bool] = []


def interrupted() -> bool:
    """Whether a SIGINT reached this `python -m pipeline.X` process: an error that follows one
    is its consequence (numpy, interrupted while importing its C extension, raises ImportError)."""
    return bool(_interrupts)


def is_command() -> bool:
    """Whether this process is a pipeline command (`python -m pipeline.X`, `tinyml X`)."""
    return bool(_installed)


def install_interrupt_policy() -> None:
    """For `python -m pipeline.X` (this package is imported first, while sys.argv[0] is "-m")
    and the `tinyml` console script:
    Ctrl-C anywhere, imports included, ends with the one line `interrupted` on stderr and exit
    status 130. Unhandled, a KeyboardInterrupt prints a traceback and Python then kills itself
    with SIGINT (status -2 to a parent process, not 130); here the hook prints the line and the
    last exit handler, once every cleanup has run (finally blocks, other exit handlers), exits 130.
    A SIGINT that the parent ignores (a background job of a script) stays ignored."""
    import _thread
    import atexit
    import os
    import signal
    import threading
    import time

    def on_sigint(signum: int, frame: object) -> None:
        _interrupts.append(True)
        raise KeyboardInterrupt

    reported: list[bool] = []

    def hook(kind, value, traceback) -> None:
        if issubclass(kind, KeyboardInterrupt) or _interrupts:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot break the exit
            reported.append(True)
            print("interrupted", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    def exit_130() -> None:
        if reported:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(130)

    def unraisable(event) -> None:
        """An interrupt that landed in a __del__ (TensorFlow's run at any time), or in this hook
        while it reported another such error, would be printed and dropped: deliver it again,
        to the code that runs next (from a thread, once this hook has returned)."""
        def again() -> None:
            threading.Thread(target=lambda: (time.sleep(0.01), _thread.interrupt_main()), daemon=True).start()

        try:
            if issubclass(event.exc_type, KeyboardInterrupt):
                again()
            else:
                previous_unraisable(event)
        except KeyboardInterrupt:
            again()

    if _installed:
        return
    _installed.append(True)
    previous, previous_unraisable = sys.excepthook, sys.unraisablehook
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
        sys.unraisablehook = unraisable
    sys.excepthook = hook
    atexit.register(exit_130)  # registered first, so it runs last


if sys.argv[:1] == ["-m"]:
    install_interrupt_policy()
