"""The one error base of the pipeline: every refusal says what is wrong in one line and
carries the exit status the command ends with.

Exit statuses, the same for every command:
  0  done (built, answered, verified)
  1  the model or the device failed a check, or a step the input cannot fix went wrong
  2  bad data or arguments: the input is what has to change
  130 interrupted (Ctrl-C)
"""
from __future__ import annotations

DONE = 0
FAILED = 1
BAD_INPUT = 2
INTERRUPTED = 130


class PipelineError(Exception):
    """A failure the user can act on, printed as `error: <message>` without a traceback."""

    exit_code = FAILED


class BadInput(PipelineError):
    """The data, the arguments or a file named by them is wrong."""

    exit_code = BAD_INPUT
