"""One camera's detection gate: given a frame and where its tracked faces should be now, what
is worth running the detector on.

- a camera with no change and no live track runs nothing at all;
- a tracked face is refreshed: R-Net and O-Net on its predicted box (no pyramid search);
- P-Net searches only where a new face can be: where a face would overlap pixels that
  changed (the detector grows the motion mask by each pyramid level's face size), outside the
  tracked faces, and around tracks that are not yet confirmed or were lost for a moment;
- the whole frame is searched when the whole picture changed (the first frame, an IR switch,
  a PTZ camera moving fast, a cut) and every `full_frame_every_s` seconds as a safety net (a
  face that appeared without moving); the detector also searches it whole when the motion
  would cost about as much;
- with `motion` off, every frame is searched whole, exactly as a plain detector does.

Pure logic over frames and boxes: no clock (time is the frames' capture time), no networks;
`MtcnnDetector.run` serves the `DetectionRequest`s it returns, for a whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facewatch.detection.detections import Detections
from facewatch.detection.motion import Motion, MotionDetector, MotionSettings
from facewatch.detection.requests import Box, DetectionRequest, Region
from facewatch.detection.settings import GateSettings

# "untracked": a face found lately that no track follows (its score too low to start one);
# refreshed, and searched around like a new track, so a face the full detector finds now and
# then is found by the gated one as often.
TrackState = Literal["tentative", "confirmed", "lost", "untracked"]


@dataclass(frozen=True)
class TrackHint:
    """A live track, as the gate needs it: where its face should be in this frame."""

    box: Box  # predicted for this frame's capture time, x1 y1 x2 y2
    state: TrackState


class DetectionGate:
    """Per camera; `plan` is fed the camera's frames in capture order."""

    def __init__(self, settings: GateSettings = GateSettings()) -> None:
        self.settings = settings
        self.motion = MotionDetector(settings.min_face,
                                     MotionSettings(threshold=settings.motion_threshold))
        self._next_full: float | None = None
        self.last_motion: Motion | None = None

    def reset(self) -> None:
        """Forget the picture (a stream that stopped): the next frame is searched whole."""
        self.motion.reset()
        self._next_full = None

    def plan(self, frame: np.ndarray, capture_ts: float, tracks: Sequence[TrackHint] = ()
             ) -> DetectionRequest:
        """What to detect in `frame` (RGB, H x W x 3), given the live tracks' predicted boxes."""
        s = self.settings
        if not s.motion or s.full_frame_every_s == 0:
            return DetectionRequest.full(s.min_face)
        height, width = frame.shape[:2]
        motion = self.motion.update(frame, capture_ts)
        self.last_motion = motion
        refresh = tuple(_clip(t.box, width, height) for t in tracks)
        if motion.global_change or self._next_full is None or capture_ts >= self._next_full:
            self._schedule(capture_ts, first=self._next_full is None)
            return DetectionRequest.full(s.min_face, refresh)
        regions = tuple(self._around(t, width, height) for t in tracks if t.state != "confirmed")
        mask = None
        if motion.mask is not None and motion.mask.any():
            # a change inside a tracked face is that face moving: its refresh covers it
            mask = motion.mask.copy()
            mh, mw = mask.shape
            for t in tracks:
                x1, y1, x2, y2 = _grow(t.box, 0.3)
                mask[max(0, int(y1 * mh / height)):max(0, int(math.ceil(y2 * mh / height))),
                     max(0, int(x1 * mw / width)):max(0, int(math.ceil(x2 * mw / width)))] = 0
        return DetectionRequest(motion=mask, regions=regions, refresh=refresh, min_face=s.min_face)

    # ------------------------------------------------------------------------------------

    def _schedule(self, now: float, first: bool = False) -> None:
        period = self.settings.full_frame_every_s
        # the first period is shortened by the phase, then the offset stays
        self._next_full = now + period * ((1.0 - self.settings.phase) if first else 1.0)

    def _around(self, track: TrackHint, width: int, height: int) -> Region:
        """P-Net around a track that is new (it needs a second detection to be confirmed),
        lost (its face turned away, or moved faster than predicted) or a face too weak to be
        tracked, at its face's scales: there, the gated detector proposes what the full one
        would."""
        x1, y1, x2, y2 = track.box
        side = max(x2 - x1, y2 - y1, 1.0)
        pad = side * (1.0 if track.state == "lost" else 0.5)
        box = _clip((x1 - pad, y1 - pad, x2 + pad, y2 + pad), width, height)
        return Region(box, max(self.settings.min_face, 0.6 * side), 1.6 * side)


def track_hints(predicted: Sequence[tuple[int, str, Box]], untracked: Sequence[Box] = ()
                ) -> list[TrackHint]:
    """Hints from a tracker's `predicted` (id, state, box) list and the boxes of the previous
    frame's faces that no track took."""
    hints = [TrackHint(box, _STATES[str(state)]) for _, state, box in predicted
             if str(state) in _STATES]
    return hints + [TrackHint(box, "untracked") for box in untracked]


_STATES: dict[str, TrackState] = {"tentative": "tentative", "confirmed": "confirmed",
                                  "lost": "lost"}


def untracked_boxes(detections: Detections, taken: Iterable[int | None]) -> list[Box]:
    """The boxes of `detections` whose index is not in `taken` (those a track took)."""
    used = {i for i in taken if i is not None}
    return [_clip(b, 1 << 30, 1 << 30) for i, b in enumerate(detections.boxes.tolist())
            if i not in used]


class UntrackedFaces:
    """Faces no track follows (too weak to start one: the full detector finds them at
    0.7-0.9, now and then), remembered for `keep_s` seconds after they were last found, so
    the gate keeps refreshing them through the frames where they dip below O-Net's
    threshold, as the full detector would find them again when they come back above it."""

    def __init__(self, keep_s: float = 1.0) -> None:
        self.keep_s = keep_s
        self._seen: list[tuple[Box, float]] = []  # box, capture time last found

    def update(self, detections: Detections, taken: Iterable[int | None], capture_ts: float) -> None:
        found = untracked_boxes(detections, taken)
        kept = [(box, ts) for box, ts in self._seen
                if capture_ts - ts <= self.keep_s and not any(_overlaps(box, f) for f in found)
                and not any(_overlaps(box, b) for b in detections.boxes.tolist())]
        self._seen = [(box, capture_ts) for box in found] + kept

    def boxes(self) -> list[Box]:
        return [box for box, _ in self._seen]

    def clear(self) -> None:
        self._seen = []


def _overlaps(a: Sequence[float], b: Sequence[float], iou: float = 0.3) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter > iou * union


def _grow(b: Sequence[float], by: float) -> Box:
    dx, dy = by * (b[2] - b[0]), by * (b[3] - b[1])
    return (b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy)


def _clip(box: Sequence[float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))
