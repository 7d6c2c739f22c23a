"""Per-camera multi-object tracking of face boxes, ByteTrack-style.

Each `update` takes one frame's detections and its capture timestamp and:

1. ends tracks unmatched for longer than `max_lost_s` of capture time (they can no longer match);
2. predicts every remaining track's box to this capture time (constant-velocity Kalman filter);
3. matches high-score detections (>= `high_score`) on IoU, optimally, against the confirmed
   and lost tracks, then those left over against the tentative tracks;
4. matches low-score detections (`low_score` .. `high_score`) against the confirmed tracks left
   over, with a stricter IoU: a face blurred or half-turned for a frame keeps its track, but a
   low-score box can never start, grow or revive a track, where most false positives live;
5. starts a tentative track from each high-score detection left over; a tentative track is
   confirmed after `min_hits` matched frames and dropped the first time it goes unmatched;
   a confirmed track that goes unmatched is lost, and ends after `max_lost_s`.

Time comes only from the capture timestamps passed in (seconds, any epoch), never from the
clock, so the same frames give the same tracks live, from a file, or in a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np

from facewatch.detection.detections import Detections
from facewatch.errors import require
from facewatch.tracking.association import iou_matrix, match
from facewatch.tracking.kalman import BoxKalman, MotionNoise

Box = tuple[float, float, float, float]
EndReason = Literal["timeout", "stopped"]


@dataclass(frozen=True)
class TrackerSettings:
    """One camera's tracker settings, checked on construction (`ConfigError`, one line)."""

    # Detections at or above this score are matched first and may start tracks.
    high_score: float = 0.9
    # Detections from here up to high_score only extend confirmed tracks; below, ignored.
    low_score: float = 0.7
    # Minimum IoU between a track's predicted box and a high-score detection to match.
    match_iou: float = 0.3
    # Minimum IoU for a low-score detection: stricter, as ByteTrack's second stage.
    low_match_iou: float = 0.5
    # Matched frames (the first included) before a track is confirmed and reported.
    min_hits: int = 2
    # Capture time a confirmed track survives without a match before it ends.
    max_lost_s: float = 1.5
    noise: MotionNoise = field(default_factory=MotionNoise)

    def __post_init__(self) -> None:
        # The only check of these bounds: the config maps tracking: onto this.
        require(0.0 < self.high_score <= 1.0, "high_score",
                f"must be in (0, 1], got {self.high_score:g}")
        require(0.0 < self.low_score <= self.high_score, "low_score",
                f"must be in (0, high_score = {self.high_score:g}], got {self.low_score:g}")
        for name in ("match_iou", "low_match_iou"):
            value = getattr(self, name)
            require(0.0 < value < 1.0, name, f"must be in (0, 1), got {value:g}")
        require(1 <= self.min_hits <= 100, "min_hits", f"must be 1 to 100, got {self.min_hits}")
        require(0.0 < self.max_lost_s <= 600.0, "max_lost_s",
                f"must be in (0, 600] seconds, got {self.max_lost_s:g}")


class TrackState(StrEnum):
    TENTATIVE = "tentative"  # seen, not yet min_hits times; not reported
    CONFIRMED = "confirmed"  # min_hits reached, and matched in this frame
    LOST = "lost"  # confirmed, unmatched since last_ts; kept for max_lost_s
    ENDED = "ended"


@dataclass(frozen=True)
class TrackInfo:
    """A live track as of one update."""

    track_id: int
    state: TrackState
    box: Box  # Kalman estimate at this capture time (x1, y1, x2, y2); predicted if unmatched
    detection: int | None  # index of its detection in this frame, None if unmatched
    # IoU of that detection with the predicted box (1.0 for a new track's first detection;
    # 0.0 when unmatched): a low value flags an uncertain association.
    match_iou: float
    score: float  # detector score of its last matched detection
    hits: int  # frames matched so far
    first_ts: float  # capture time of its first detection
    last_ts: float  # capture time of its last matched detection


@dataclass(frozen=True)
class EndedTrack:
    track_id: int
    first_ts: float
    last_ts: float  # last matched detection
    hits: int
    reason: EndReason  # "timeout": lost for max_lost_s; "stopped": end_all (stream ended)


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed: per-detection track ids and the tracks' lifecycle events."""

    capture_ts: float
    # For each detection of the frame (same order): its confirmed track's id, or None
    # (unmatched, or matched to a still-tentative track).
    detection_tracks: tuple[int | None, ...]
    tracks: tuple[TrackInfo, ...]  # every live track (tentative, confirmed, lost)
    started: tuple[int, ...]  # confirmed in this frame
    reacquired: tuple[int, ...]  # lost, and matched again in this frame
    ended: tuple[EndedTrack, ...]  # confirmed tracks that ended in this frame

    def track(self, track_id: int) -> TrackInfo | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)

    def matched(self) -> tuple[TrackInfo, ...]:
        """Confirmed tracks with a detection in this frame."""
        return tuple(t for t in self.tracks
                     if t.state is TrackState.CONFIRMED and t.detection is not None)


class _Track:
    def __init__(self, track_id: int, box: np.ndarray, score: float, ts: float,
                 noise: MotionNoise) -> None:
        self.id = track_id
        self.kalman = BoxKalman(box, noise)
        self.state = TrackState.TENTATIVE
        self.score = score
        self.hits = 1
        self.first_ts = ts
        self.last_ts = ts
        self.detection: int | None = None
        self.match_iou = 1.0

    def info(self) -> TrackInfo:
        x1, y1, x2, y2 = (float(v) for v in self.kalman.box)
        iou = self.match_iou if self.detection is not None else 0.0
        return TrackInfo(self.id, self.state, (x1, y1, x2, y2), self.detection, iou, self.score,
                         self.hits, self.first_ts, self.last_ts)

    def ended(self, reason: EndReason) -> EndedTrack:
        self.state = TrackState.ENDED
        return EndedTrack(self.id, self.first_ts, self.last_ts, self.hits, reason)


class FaceTracker:
    """Tracks of one camera.  Not thread-safe; one instance per camera, fed in capture order."""

    def __init__(self, settings: TrackerSettings = TrackerSettings(), first_id: int = 1) -> None:
        self.settings = settings
        self._tracks: list[_Track] = []
        self._next_id = first_id
        self._last_ts: float | None = None

    @property
    def last_ts(self) -> float | None:
        return self._last_ts

    def update(self, detections: Detections, capture_ts: float) -> TrackUpdate:
        """Advance to `capture_ts` (seconds, non-decreasing) with this frame's detections."""
        s = self.settings
        dt = self._advance(capture_ts)
        ended = self._expire(capture_ts)
        for t in self._tracks:
            t.kalman.predict(dt)
            t.detection = None

        boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(detections.scores, np.float64).reshape(-1)
        high = np.nonzero(scores >= s.high_score)[0]
        low = np.nonzero((scores >= s.low_score) & (scores < s.high_score))[0]

        # Stage 1: high-score detections against the confirmed and lost tracks, then what is
        # left of them against the tentative tracks (an established track keeps its face
        # when a duplicate tentative box overlaps it more).
        established = [t for t in self._tracks if t.state is not TrackState.TENTATIVE]
        pairs = self._associate(established, boxes, high, s.match_iou)
        started, reacquired = self._apply(established, pairs, high, boxes, scores, capture_ts)
        matched_high = {int(high[c]) for _, c in pairs}
        high_left = np.array([d for d in high if int(d) not in matched_high], np.int64)
        tentative = [t for t in self._tracks if t.state is TrackState.TENTATIVE]
        pairs_t = self._associate(tentative, boxes, high_left, s.match_iou)
        started += self._apply(tentative, pairs_t, high_left, boxes, scores, capture_ts)[0]
        matched_high |= {int(high_left[c]) for _, c in pairs_t}

        # Stage 2: low-score detections against the confirmed tracks still unmatched.
        rest = [t for t in established
                if t.detection is None and t.state is TrackState.CONFIRMED]
        pairs_low = self._associate(rest, boxes, low, s.low_match_iou)
        self._apply(rest, pairs_low, low, boxes, scores, capture_ts)

        # Unmatched tracks: tentative ones are dropped, confirmed ones become lost.
        kept = []
        for t in self._tracks:
            if t.detection is not None:
                kept.append(t)
            elif t.state is TrackState.TENTATIVE:
                t.state = TrackState.ENDED  # never reported, so no ended record
            else:
                if t.state is TrackState.CONFIRMED:
                    t.kalman.freeze_size()
                t.state = TrackState.LOST
                kept.append(t)
        self._tracks = kept

        # New tentative tracks from the high-score detections left over.
        for d in high:
            if int(d) in matched_high:
                continue
            t = _Track(self._next_id, boxes[d], float(scores[d]), capture_ts, s.noise)
            self._next_id += 1
            t.detection = int(d)
            if s.min_hits <= 1:
                t.state = TrackState.CONFIRMED
                started.append(t.id)
            self._tracks.append(t)

        return self._report(len(detections), capture_ts, started, reacquired, ended)

    def predicted(self, capture_ts: float) -> list[tuple[int, TrackState, Box]]:
        """Where every track still alive at `capture_ts` should be then: (id, state, box),
        without changing anything -- what a detector needs to know before this frame's
        `update` (where to refresh known faces, where to look for new ones)."""
        dt = 0.0 if self._last_ts is None else max(0.0, capture_ts - self._last_ts)
        out = []
        for t in self._tracks:
            if capture_ts - t.last_ts > self.settings.max_lost_s:
                continue
            x1, y1, x2, y2 = (float(v) for v in t.kalman.predicted_box(dt))
            out.append((t.id, t.state, (x1, y1, x2, y2)))
        return out

    def end_all(self, capture_ts: float | None = None) -> TrackUpdate:
        """End every track (the stream stopped or the camera went offline)."""
        ts = self._last_ts if capture_ts is None else capture_ts
        if ts is None:
            ts = 0.0
        ended = [t.ended("stopped") for t in self._tracks if t.state is not TrackState.TENTATIVE]
        self._tracks = []
        return TrackUpdate(ts, (), (), (), (), tuple(ended))

    # ------------------------------------------------------------------------------------

    def _advance(self, capture_ts: float) -> float:
        if not np.isfinite(capture_ts):
            raise ValueError(f"capture timestamp must be finite, got {capture_ts}")
        if self._last_ts is not None and capture_ts < self._last_ts:
            raise ValueError(f"capture timestamps must not go backwards: {capture_ts} after "
                             f"{self._last_ts} (start a new tracker after a stream restart)")
        dt = 0.0 if self._last_ts is None else capture_ts - self._last_ts
        self._last_ts = capture_ts
        return dt

    def _expire(self, capture_ts: float) -> list[EndedTrack]:
        ended, kept = [], []
        for t in self._tracks:
            if capture_ts - t.last_ts > self.settings.max_lost_s:
                if t.state is not TrackState.TENTATIVE:
                    ended.append(t.ended("timeout"))
            else:
                kept.append(t)
        self._tracks = kept
        return ended

    @staticmethod
    def _associate(tracks: list[_Track], boxes: np.ndarray, dets: np.ndarray,
                   min_iou: float) -> list[tuple[int, int]]:
        if not tracks or dets.size == 0:
            return []
        predicted = np.stack([t.kalman.box for t in tracks])
        iou = iou_matrix(predicted, boxes[dets])
        pairs = match(iou, min_iou)
        for r, c in pairs:
            tracks[r].match_iou = float(iou[r, c])
        return pairs

    def _apply(self, tracks: list[_Track], pairs: list[tuple[int, int]], dets: np.ndarray,
               boxes: np.ndarray, scores: np.ndarray, ts: float) -> tuple[list[int], list[int]]:
        started, reacquired = [], []
        for r, c in pairs:
            t, d = tracks[r], int(dets[c])
            t.kalman.correct(boxes[d])
            t.detection = d
            t.score = float(scores[d])
            t.hits += 1
            t.last_ts = ts
            if t.state is TrackState.LOST:
                t.state = TrackState.CONFIRMED
                reacquired.append(t.id)
            elif t.state is TrackState.TENTATIVE and t.hits >= self.settings.min_hits:
                t.state = TrackState.CONFIRMED
                started.append(t.id)
        return started, reacquired

    def _report(self, n_dets: int, ts: float, started: list[int], reacquired: list[int],
                ended: list[EndedTrack]) -> TrackUpdate:
        per_det: list[int | None] = [None] * n_dets
        for t in self._tracks:
            if t.detection is not None and t.state is TrackState.CONFIRMED:
                per_det[t.detection] = t.id
        return TrackUpdate(ts, tuple(per_det), tuple(t.info() for t in self._tracks),
                           tuple(started), tuple(reacquired), tuple(ended))
