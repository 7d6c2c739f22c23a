"""One camera's share of the inference process: tracks → who to embed → identities → events.

The inference process owns one `CameraAnalysis` per camera and drives it in three steps per
frame, so that every camera's frame of a batch goes through the detector, and the faces to
embed from every camera through the embedder, in one call each: `plan` (before detection) says
what the detector should run on the frame -- its camera's `DetectionGate` decides from motion
and where the tracked faces should be --, `select` (after detection) says which faces need an
embedding, `apply` (after embedding) updates identities and returns the events.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facewatch.detection.gate import DetectionGate, UntrackedFaces, track_hints
from facewatch.detection.requests import DetectionRequest
from facewatch.detection.settings import GateSettings
from facewatch.events.schema import (
    Event,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
)
from facewatch.events.snapshots import SnapshotStore, face_context
from facewatch.identity import (
    Changed,
    Decision,
    IdentitySettings,
    IdentityStage,
    IdentityUpdate,
    Recognized,
    Unknown,
    observations,
)
from facewatch.inference.segments import SegmentViews, named, segment_record, unnamed
from facewatch.library.records import TrackRecord, Verdict
from facewatch.pipeline import AnalyzedFaces
from facewatch.tracking import (
    EmbedPolicy,
    EmbedPolicySettings,
    EmbedRequest,
    FaceTracker,
    TrackerSettings,
    TrackUpdate,
)


@dataclass(frozen=True)
class AnalysisSettings:
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    policy: EmbedPolicySettings = field(default_factory=EmbedPolicySettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)


@dataclass
class _Pending:
    """What `select` learned about a frame, waiting for its embeddings."""

    frame: np.ndarray
    faces: AnalyzedFaces
    tracks: TrackUpdate
    requests: tuple[EmbedRequest, ...]


class CameraAnalysis:
    def __init__(self, camera: str, settings: AnalysisSettings, matcher: Any,
                 snapshots: SnapshotStore | None, metadata_of: Any = None,
                 track_ids: Iterator[int] | None = None, library_views: int = 0,
                 embedder_sha256: str = "", detection: GateSettings | None = None) -> None:
        """`library_views`: keep that many best views per published segment and make a
        `TrackRecord` of each ended segment in `records` (0: none, the library is off).
        `detection`: this camera's detection gate settings."""
        self.camera = camera
        self.gate = DetectionGate(detection or GateSettings())
        # faces no track took (too weak to start one): refreshed too
        self._untracked = UntrackedFaces()
        self.tracker = FaceTracker(settings.tracker)
        self.policy = EmbedPolicy(settings.policy)
        self.identity = IdentityStage(matcher, settings.identity)
        self.snapshots = snapshots
        self._metadata_of: Callable[[str], Any] = metadata_of or (lambda _pid: {})
        self._wants: tuple[int, ...] = ()
        self._best: dict[int, tuple[float, np.ndarray]] = {}  # track → (quality, face view)
        self._snapshot_path: dict[int, str | None] = {}
        # Where each track's face was last detected: events name that box, never the
        # tracker's Kalman estimate, which is a blend of measurement and motion model and
        # lags or overshoots (after a cut it can sit between two people), and which for a
        # track not matched in this frame is only a prediction.
        self._seen_box: dict[int, tuple[float, float, float, float]] = {}
        self._pending: _Pending | None = None
        self._last_ts = float("-inf")
        # The tracker follows boxes; when the face in a box turns out to be someone else (a
        # cut in edited video, two people crossing), the identity stage says so and the
        # published track is split: the old one ends and a new one starts.  Published track
        # ids therefore map from the tracker's, and must not repeat across inference process restarts
        # or cameras (consumers key on them): the inference process hands every camera the same counter,
        # which starts at the wall clock in milliseconds.
        self._track_ids = track_ids if track_ids is not None else new_track_ids()
        self._published: dict[int, int] = {}  # tracker id → published id
        self._segment_start: dict[int, float] = {}  # tracker id → capture ts of its segment
        # For the face library: each segment's best views and its latest verdict; the records
        # of ended segments wait in `records` for the inference process to send them.
        self._views = SegmentViews(library_views) if library_views > 0 else None
        self._verdict: dict[int, Verdict] = {}
        self._embedder_sha256 = embedder_sha256
        self.records: list[TrackRecord] = []

    def set_matcher(self, matcher: Any, metadata_of: Any = None) -> None:
        """A reloaded gallery: live tracks are re-decided against it on the next frame."""
        self.identity.set_matcher(matcher)
        if metadata_of is not None:
            self._metadata_of = metadata_of

    def plan(self, frame: np.ndarray, capture_ts: float) -> DetectionRequest:
        """What the detector should run on this frame: nothing, the boxes of the tracked faces,
        regions where the picture changed, or the whole frame (see `DetectionGate`)."""
        if capture_ts <= self._last_ts:
            return DetectionRequest()  # `select` will ignore this frame
        return self.gate.plan(frame, capture_ts,
                              track_hints(self.tracker.predicted(capture_ts), self._untracked.boxes()))

    def select(self, frame: np.ndarray, faces: AnalyzedFaces, capture_ts: float
               ) -> tuple[np.ndarray, list[Event]]:
        """Track this frame's faces; returns the aligned crops to embed, and track.started
        events.  Frames older than the last one seen (a restarted stream) are ignored."""
        if capture_ts <= self._last_ts:
            return np.zeros((0, 112, 112, 3), np.uint8), []
        self._last_ts = capture_ts
        tracks = self.tracker.update(faces.detections, capture_ts)
        self._untracked.update(faces.detections, (t.detection for t in tracks.tracks), capture_ts)
        for live in tracks.tracks:
            if live.detection is not None:
                self._seen_box[live.track_id] = _box(faces.detections.boxes[live.detection])
        requests = self.policy.select(tracks, faces.quality, requested=self._wants)
        self._pending = _Pending(frame, faces, tracks, requests)
        events: list[Event] = []
        for track_id in tracks.started:
            info = tracks.track(track_id)
            assert info is not None
            events.append(self._start_segment(track_id, info.first_ts, capture_ts,
                                              self._seen_box[track_id], info.score))
        crops = faces.crops[[r.detection for r in requests]] if requests else \
            np.zeros((0, 112, 112, 3), np.uint8)
        return crops, events

    def apply(self, embeddings: np.ndarray) -> list[Event]:
        """Identities from this frame's embeddings (in `select`'s order) → events."""
        pending, self._pending = self._pending, None
        if pending is None:
            return []
        for request in pending.requests:
            self._remember_view(pending, request)
        update = self.identity.update(pending.tracks,
                                      observations(pending.requests, embeddings))
        self._wants = update.wants_evidence
        events: list[Event] = []
        for decision in update.decisions:
            if isinstance(decision, Changed) and decision.reason == "appearance":
                events += self._split(decision, pending)
            self._verdict[decision.track_id] = _verdict(decision)
            events.append(self._decision_event(decision, pending))
        if self._views is not None:  # after the splits: this frame's views are the new person's
            for request, embedding in zip(pending.requests, embeddings):
                self._views.add(request.track_id, request.quality, embedding,
                                pending.faces.crops[request.detection])
        events += self._ended(update)
        live = {info.track_id for info in pending.tracks.tracks}
        self._seen_box = {tid: box for tid, box in self._seen_box.items() if tid in live}
        return events

    def end(self, ts: float) -> list[Event]:
        """The stream stopped: end every track now."""
        tracks = self.tracker.end_all(ts)
        update = self.identity.update(tracks)
        self._last_ts = float("-inf")
        self._untracked.clear()
        self.gate.reset()  # the stream comes back with a new picture: look at all of it
        self._pending = None
        return self._ended(update)

    # ------------------------------------------------------------------------------------

    def _start_segment(self, track_id: int, first_ts: float, ts: float,
                       bbox: Sequence[float], score: float) -> TrackStarted:
        published = next(self._track_ids)
        self._published[track_id] = published
        self._segment_start[track_id] = first_ts
        return TrackStarted(camera=self.camera, ts=ts, track_id=published, bbox=_box(bbox),
                            score=score)

    def _split(self, decision: Changed, pending: _Pending) -> list[Event]:
        """End the published track of the person who was in this box, start a new one."""
        tid, ts = decision.track_id, decision.capture_ts
        info = pending.tracks.track(tid)
        ended = TrackEnded(camera=self.camera, ts=ts, track_id=self._published[tid],
                           duration_s=max(0.0, ts - self._segment_start[tid]),
                           identity=decision.previous_id, name=decision.previous_name,
                           snapshot=self._snapshot_path.get(tid))
        self._record(tid, ts, self._verdict.pop(tid, None))
        # the best view so far was of the previous person; keep only this frame's
        best = self._best.pop(tid, None)
        self._snapshot_path.pop(tid, None)
        current = [r for r in pending.requests if r.track_id == tid]
        if current and best is not None:
            self._remember_view(pending, current[0])
        bbox = self._seen_box.get(tid, (0.0, 0.0, 0.0, 0.0))
        score = info.score if info is not None else 0.0
        return [ended, self._start_segment(tid, ts, ts, bbox, score)]

    def _remember_view(self, pending: _Pending, request: EmbedRequest) -> None:
        best = self._best.get(request.track_id)
        if best is None or request.quality > best[0]:
            box = pending.faces.detections.boxes[request.detection]
            self._best[request.track_id] = (request.quality, face_context(pending.frame, box))
            self._snapshot_path.pop(request.track_id, None)  # a better view: write it again

    def _snapshot(self, track_id: int) -> str | None:
        if self.snapshots is None or track_id not in self._best:
            return None
        if track_id not in self._snapshot_path:
            # Named by the published id, not the tracker's: after a split the tracker id
            # carries on with the next person (whose view would overwrite the file the first
            # person's events point at), and tracker ids start again at 1 when the inference process
            # restarts.
            self._snapshot_path[track_id] = self.snapshots.save(
                self.camera, str(self._published[track_id]), self._best[track_id][1])
        return self._snapshot_path[track_id]

    def _decision_event(self, decision: Decision, pending: _Pending) -> Event:
        info = pending.tracks.track(decision.track_id)
        bbox = self._seen_box.get(decision.track_id) or \
            (_box(info.box) if info is not None else (0.0, 0.0, 0.0, 0.0))
        person = decision.person_id if isinstance(decision, (Recognized, Changed)) else None
        if person is not None:
            assert isinstance(decision, (Recognized, Changed)) and decision.name is not None
            return FaceRecognized(camera=self.camera, ts=decision.capture_ts,
                                  track_id=self._published[decision.track_id], identity=person,
                                  name=decision.name, score=decision.score, bbox=bbox,
                                  snapshot=self._snapshot(decision.track_id),
                                  metadata=self._metadata_of(person))
        assert isinstance(decision, (Unknown, Changed))
        return FaceUnknown(camera=self.camera, ts=decision.capture_ts,
                           track_id=self._published[decision.track_id], score=decision.score,
                           bbox=bbox,
                           snapshot=self._snapshot(decision.track_id))

    def _ended(self, update: IdentityUpdate) -> list[Event]:
        events: list[Event] = []
        for final in update.finals:
            tid = final.track_id
            if tid not in self._published:
                if self._views is not None:
                    self._views.forget(tid)
                continue
            snapshot = self._snapshot(tid) if final.embeddings else None  # before the pop
            verdict = self._verdict.pop(tid, None)
            if final.status == "known" and final.person_id is not None and final.name is not None:
                verdict = named(final.person_id, final.name, final.score or 0.0)
            self._record(tid, final.last_ts, verdict if final.status != "pending" else None)
            events.append(TrackEnded(
                camera=self.camera, ts=final.last_ts, track_id=self._published.pop(tid),
                duration_s=max(0.0, final.last_ts - self._segment_start.pop(tid)),
                identity=final.person_id, name=final.name, snapshot=snapshot))
            self._best.pop(tid, None)
            self._snapshot_path.pop(tid, None)
            self._seen_box.pop(tid, None)
        return events


    def _record(self, tid: int, last_ts: float, verdict: Verdict | None) -> None:
        """The library's record of the segment of `tid` that ends now (before its state goes)."""
        if self._views is None:
            return
        views = self._views.take(tid)
        if verdict is None:  # never decided: too little evidence to keep
            return
        best = self._best.get(tid)
        record = segment_record(self.camera, self._published[tid], self._segment_start[tid],
                                last_ts, verdict, views, best[1] if best else None,
                                self._embedder_sha256)
        if record is not None:
            self.records.append(record)

    def take_records(self) -> list[TrackRecord]:
        out, self.records = self.records, []
        return out


def _verdict(decision: Decision) -> Verdict:
    if isinstance(decision, Recognized):
        return named(decision.person_id, decision.name, decision.score)
    if isinstance(decision, Unknown):
        return unnamed(decision.score, decision.nearest_id)
    if decision.person_id is not None and decision.name is not None:
        return named(decision.person_id, decision.name, decision.score)
    return unnamed(decision.score, None)


def new_track_ids() -> Iterator[int]:
    """Published track ids: one counter per inference process, shared by its cameras."""
    return itertools.count(int(time.time() * 1000) + 1)


def _box(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)
