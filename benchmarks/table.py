"""How the benchmarks print their figures: one row per model, as aligned text or a Markdown table
(for docs/qemu.md)."""
from __future__ import annotations

from typing import Sequence


def count(value: float | int | None) -> str:
    """A figure with thousands separators; '-' where it was not measured."""
    if value is None:
        return "-"
    return f"{value:,}" if float(value).is_integer() else f"{value:,.2f}"


def show(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> None:
    """The rows under their header: the first column left-aligned, the figures right-aligned."""
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("| --- |" + " ---: |" * (len(header) - 1))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]
    for line in (header, *rows):
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))))
