"""One way to wait at most so long: a point on the monotonic clock, so a wall-clock jump
never stretches or cuts a wait. A leaf module: the device side imports it without pulling
in the emulation."""
from __future__ import annotations

import time


class Deadline:
    """`seconds` from now; every bounded read loop asks it how long it may still wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative: safe as a select() or pyserial timeout."""
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end
