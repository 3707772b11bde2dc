"""One line is a line: a row of more than WIDE values (an IMU window of 714, an autoencoder's 640
outputs) is shown by its first SHOWN values and its count wherever a line names it (errors,
warnings, check and verify lines); report.json keeps every value."""
from __future__ import annotations

from typing import Any, Iterable

WIDE = 8
SHOWN = 4


def text(values: Iterable[Any], form: str = "{:g}", sep: str = ", ") -> str:
    """The values as a person reads them on one line: all of a narrow row, the first few and how many
    of a wide one."""
    values = list(values)
    if len(values) <= WIDE:
        return sep.join(form.format(v) for v in values)
    return sep.join(form.format(v) for v in values[:SHOWN]) + f"{sep}... ({len(values)} values)"


def words(line: str) -> str:
    """A device's answer line the same way: its space-separated fields, the first few of a wide one."""
    return text(line.split(), "{}", " ")
