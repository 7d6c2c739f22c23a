"""`facewatch bench detect`'s two passes over the same frames, and how they compare.

- the full pass: the plain detector on every frame (MTCNN over the whole pyramid);
- the gated pass: what the daemon does per camera: a `DetectionGate` decides what to run on
  each frame from motion and the live tracks' predicted boxes, the detector runs that, and a
  `FaceTracker` (the daemon's, with its default settings) follows the faces found.

Recall is the gated pass's against the full pass on the same frames: per frame (a face the
full pass finds and the gated pass misses, at IoU < 0.5, counts against it) and per track (a
track the tracker makes of the full pass's faces counts as found when the gated pass has a
confirmed track on one of its faces in the same frame; how many frames later than the full
pass's is the delay).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from facewatch.detection.detections import Detections
from facewatch.detection.detector import MtcnnDetector
from facewatch.detection.gate import DetectionGate, UntrackedFaces, track_hints
from facewatch.detection.requests import DetectionRequest
from facewatch.detection.settings import GateSettings
from facewatch.tracking import FaceTracker, TrackerSettings, TrackUpdate

MATCH_IOU = 0.5


@dataclass
class Pass:
    """One pass over the frames: what was found, what it cost."""

    detections: list[Detections] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time per frame
    cpu_seconds: float = 0.0  # process CPU time over the pass
    kinds: list[str] = field(default_factory=list)  # what ran per frame (see DetectionRequest.kind)
    tracks: list[TrackUpdate] = field(default_factory=list)  # the tracker's view, per frame


def full_pass(detector: MtcnnDetector, frames: list[np.ndarray], min_face: float) -> Pass:
    out = Pass()
    request = DetectionRequest.full(min_face)
    cpu0 = _cpu()
    for frame in frames:
        t = time.perf_counter()
        out.detections.append(detector.run([frame], [request])[0])
        out.seconds.append(time.perf_counter() - t)
        out.kinds.append("full")
    out.cpu_seconds = _cpu() - cpu0
    return out


def gated_pass(detector: MtcnnDetector, frames: list[np.ndarray], times: list[float],
               settings: GateSettings, tracker_settings: TrackerSettings = TrackerSettings()
               ) -> Pass:
    """The daemon's per-camera loop without embedding: gate → detector → tracker.  Time and
    CPU count the gate and the detector, not the tracker (it runs in either mode)."""
    gate = DetectionGate(settings)
    tracker = FaceTracker(tracker_settings)
    out = Pass()
    cpu = 0.0
    untracked = UntrackedFaces()
    for frame, ts in zip(frames, times):
        hints = track_hints(tracker.predicted(ts), untracked.boxes())
        c, t = _cpu(), time.perf_counter()
        request = gate.plan(frame, ts, hints)
        found = detector.run([frame], [request])[0]
        out.seconds.append(time.perf_counter() - t)
        cpu += _cpu() - c
        out.detections.append(found)
        out.kinds.append(detector.last_kinds[0])  # what ran (patches may have become the full frame)
        update = tracker.update(found, ts)
        out.tracks.append(update)
        untracked.update(found, (t.detection for t in update.tracks), ts)
    out.cpu_seconds = cpu
    return out


def track(detections: list[Detections], times: list[float],
          settings: TrackerSettings = TrackerSettings()) -> list[TrackUpdate]:
    tracker = FaceTracker(settings)
    return [tracker.update(d, ts) for d, ts in zip(detections, times)]


@dataclass(frozen=True)
class Recall:
    faces: int  # faces the full pass found
    faces_found: int  # ... of which the gated pass found
    extra: int  # gated faces the full pass did not find
    tracks: int  # confirmed tracks of the full pass
    tracks_found: int
    delays: tuple[int, ...]  # per found track: frames from the full pass's track to the gated one's

    @property
    def per_frame(self) -> float:
        return self.faces_found / self.faces if self.faces else 1.0

    @property
    def per_track(self) -> float:
        return self.tracks_found / self.tracks if self.tracks else 1.0


def recall(reference: list[Detections], ref_tracks: list[TrackUpdate], gated: list[Detections],
           gated_tracks: list[TrackUpdate]) -> Recall:
    faces = found = extra = 0
    first_ref: dict[int, int] = {}  # reference track → first frame confirmed
    first_hit: dict[int, int] = {}  # reference track → first frame a confirmed gated track covers it
    for i, (ref, got) in enumerate(zip(reference, gated)):
        overlap = iou(ref.boxes, got.boxes)
        faces += len(ref)
        if len(ref) and len(got):
            found += int((overlap.max(axis=1) >= MATCH_IOU).sum())
            extra += int((overlap.max(axis=0) < MATCH_IOU).sum())
        else:
            extra += len(got)
        confirmed = [d for d, tid in enumerate(gated_tracks[i].detection_tracks) if tid is not None]
        for d, tid in enumerate(ref_tracks[i].detection_tracks):
            if tid is None:
                continue
            first_ref.setdefault(tid, i)
            if tid not in first_hit and confirmed and overlap[d, confirmed].max() >= MATCH_IOU:
                first_hit[tid] = i
    delays = tuple(first_hit[t] - first_ref[t] for t in sorted(first_hit))
    return Recall(faces, found, extra, len(first_ref), len(first_hit), delays)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` (N, 4) with every box of `b` (M, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    return out


_cpu: Callable[[], float] = time.process_time
