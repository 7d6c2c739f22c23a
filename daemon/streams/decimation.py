"""Thin a stream of frame timestamps to a target rate (every frame is decoded; only some go on)."""

from __future__ import annotations


class Decimator:
    """Decides, frame by frame, which frames to hand on to reach `fps` on average.

    Works on the stream's own timeline (seconds), so a file decoded faster than real time is
    thinned exactly as it would be live.  A frame is taken when it is the one closest to the
    next due time: a frame up to half an input interval early counts as on time, which
    takes exactly every third frame of a 29.97 fps stream at 10 fps rather than drifting.
    Due times advance by the period, not from the frame taken, so the average rate is exact
    for any input rate; after a gap (stall, seek, timestamps going backwards) the schedule
    restarts at the next frame instead of bursting to catch up.
    """

    def __init__(self, fps: float | None) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0 or None, got {fps}")
        self._period = 1.0 / fps if fps else 0.0
        self._due: float | None = None
        self._last: float | None = None
        self._half_interval = 0.0

    def take(self, ts: float) -> bool:
        """Whether the frame at stream time `ts` (seconds) should be handed on."""
        if self._period == 0.0:
            return True
        last, self._last = self._last, ts
        if last is not None and ts > last:
            self._half_interval = min((ts - last) / 2, self._period / 2)
        if self._due is None or last is None or ts < last or ts - self._due > self._period:
            self._due = ts + self._period
            return True
        if ts + self._half_interval >= self._due:
            self._due += self._period
            return True
        return False

    def reset(self) -> None:
        """Forget the schedule (a new connection starts a new timeline)."""
        self._due = None
        self._last = None
        self._half_interval = 0.0
