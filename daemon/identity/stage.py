"""Identity per track: aggregate a track's embeddings, match once per frame, decide with hysteresis.

One `FaceTracker`, `EmbedPolicy` and `IdentityStage` per camera; per frame (the embedding of
several cameras' requests may be batched in one call between `select` and `update`)::

    faces = pipeline.analyze([frame], embed=False)[0]        # boxes, crops, quality
    tracks = tracker.update(faces.detections, capture_ts)
    requests = policy.select(tracks, faces.quality, requested=last.wants_evidence)
    vectors = pipeline.embedder.embed(faces.crops[[r.detection for r in requests]])
    last = identity.update(tracks, observations(requests, vectors, faces.crops))
    # publish last.decisions (recognized / unknown / changed) and last.finals (track ended);
    # tag each detection i with last.identity(tracks.detection_tracks[i])

and when the stream stops: ``identity.update(tracker.end_all())`` for the last finals.

What `update` does:

- each observation is added to its track's evidence (quality-weighted, floored at
  `min_weight` so that faces the quality score vetoes still count a little);
- an observation that does not resemble its track's evidence (cosine < `switch_below`) is held
  aside; `switch_evidence` such observations in a row, resembling each other, mean the box now
  holds someone else (an ID switch in the tracker, or a cut): the evidence restarts from them.
  A single odd one (blur, a turned head) is dropped when the next resembles the track again;
- every view is matched on its own too (one batched call per frame): its nearest person is
  its vote, and a person's share of the votes is the views' agreement;
- every track whose evidence changed is matched against the gallery in one batched call, and
  once a track has `min_evidence` embeddings it gets a label: named at the gallery's threshold
  (enter; the gallery's operating point, see facewatch.identity.threshold) when the person
  also leads the next by `min_margin` and has `min_agreement` of the votes, kept down to
  enter - `exit_margin` (exit), unknown otherwise; a person vetoed by the gallery's `not:`
  photos is never the nearest;
- the first label is a `Recognized` or `Unknown` decision, every later change a `Changed`;
  a new person in the box is always a `Changed` with reason "appearance", even when they get
  the same label as the one before (unknown after unknown, or the same name again), so that
  the daemon splits the published track: two people must never share one track;
- every track the tracker ended gets a `FinalIdentity` (with the best-quality face as snapshot).

`set_matcher` swaps the gallery: every live track is matched again at the next update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facewatch.errors import ConfigError
from facewatch.identity.decisions import (
    Changed,
    ChangeReason,
    Decision,
    FinalIdentity,
    IdentityUpdate,
    Label,
    LabelSpan,
    Observation,
    Recognized,
    Status,
    TrackIdentity,
    Unknown,
)
from facewatch.identity.evidence import Evidence, decide
from facewatch.identity.matcher import GalleryLike, Matcher, Nearest, as_matcher
from facewatch.tracking.policy import EmbedRequest
from facewatch.tracking.tracker import TrackState, TrackUpdate


@dataclass(frozen=True)
class IdentitySettings:
    # The similarity that names someone is the matcher's (the gallery's operating point,
    # facewatch.identity.threshold); these settings say what else a track needs.
    # Embeddings a track needs before any label (named or unknown).
    min_evidence: int = 2
    # A name is dropped below the gallery's threshold minus this.
    exit_margin: float = 0.05
    # A name is only given when its person leads the next nearest by this much.
    min_margin: float = 0.0
    # ... and is the nearest person of at least this (quality-weighted) share of the views.
    min_agreement: float = 0.0
    # A track whose score is within this of the threshold asks for an embedding of every
    # frame, until it has `borderline_views` (0 disables): its mean is then less noisy.
    borderline: float = 0.05
    borderline_views: int = 12
    # Floor of an embedding's weight (its quality otherwise), so zero-quality faces count.
    min_weight: float = 0.05
    # An embedding less similar than this to its track's evidence may be someone else.  Same
    # person in one track: 0.6+ on the Hamilton clip; another person: 0.26 at most.
    switch_below: float = 0.4
    # Dissimilar embeddings in a row that restart the evidence (0 disables switch detection).
    switch_evidence: int = 2

    def __post_init__(self) -> None:
        if self.min_evidence < 1:
            raise ConfigError(f"identity: min_evidence must be >= 1, got {self.min_evidence}")
        if not 0.0 <= self.exit_margin < 1.0:
            raise ConfigError(f"identity: exit_margin must be in [0, 1), got {self.exit_margin}")
        if not 0.0 <= self.min_margin < 1.0:
            raise ConfigError(f"identity: min_margin must be in [0, 1), got {self.min_margin}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"identity: min_agreement must be in [0, 1], got "
                              f"{self.min_agreement}")
        if not 0.0 <= self.borderline < 1.0:
            raise ConfigError(f"identity: borderline must be in [0, 1), got {self.borderline}")
        if self.borderline_views < 0:
            raise ConfigError(f"identity: borderline_views must be >= 0, got "
                              f"{self.borderline_views}")
        if not 0.0 < self.min_weight <= 1.0:
            raise ConfigError(f"identity: min_weight must be in (0, 1], got {self.min_weight}")
        if not -1.0 <= self.switch_below <= 1.0:
            raise ConfigError(f"identity: switch_below must be in [-1, 1], got {self.switch_below}")
        if self.switch_evidence < 0:
            raise ConfigError(f"identity: switch_evidence must be >= 0, got {self.switch_evidence}")


def observations(requests: Sequence[EmbedRequest], embeddings: np.ndarray,
                 crops: np.ndarray | None = None) -> list[Observation]:
    """Pair `EmbedPolicy`'s requests with their embeddings (same order, (len(requests), D)) and,
    for snapshots, the frame's aligned crops (indexed by detection)."""
    if len(requests) != embeddings.shape[0]:
        raise ValueError(f"{len(requests)} requests but {embeddings.shape[0]} embeddings")
    return [Observation(r.track_id, embeddings[i], r.quality,
                        None if crops is None else crops[r.detection])
            for i, r in enumerate(requests)]


class _Track:
    def __init__(self, track_id: int, dim: int, ts: float) -> None:
        self.id = track_id
        self.dim = dim
        self.main = Evidence(dim)
        self.challenger: Evidence | None = None
        self.label: Label | None = None
        self.score: float | None = None
        self.margin: float | None = None
        self.agreement: float | None = None
        self.nearest_id: str | None = None
        self.embeddings = 0
        self.first_ts = ts
        self.last_ts = ts
        self.history: list[LabelSpan] = []
        self.dirty = False
        self.switched = False

    def status(self) -> Status:
        if self.label is None:
            return "pending"
        return "known" if self.label.known else "unknown"


class IdentityStage:
    """Identity of one camera's tracks.  Pure: feed it every `TrackUpdate` in order."""

    def __init__(self, matcher: Matcher | GalleryLike,
                 settings: IdentitySettings = IdentitySettings()) -> None:
        self.settings = settings
        self._matcher = as_matcher(matcher)
        self._tracks: dict[int, _Track] = {}
        self._regallery = False

    @property
    def matcher(self) -> Matcher:
        return self._matcher

    def set_matcher(self, matcher: Matcher | GalleryLike) -> None:
        """Swap the gallery; live tracks are matched against it at the next `update`."""
        self._matcher = as_matcher(matcher)
        self._regallery = True

    @property
    def enter_threshold(self) -> float:
        return float(self._matcher.threshold)

    @property
    def exit_threshold(self) -> float:
        return self.enter_threshold - self.settings.exit_margin

    def update(self, tracks: TrackUpdate, observations: Sequence[Observation] = ()
               ) -> IdentityUpdate:
        ts = tracks.capture_ts
        regallery, self._regallery = self._regallery, False
        votes: list[Nearest] = []
        if observations:  # each view's own nearest person, for the views' agreement
            votes = self._matcher.nearest(np.stack([np.asarray(o.embedding, np.float32)
                                                    .reshape(-1) for o in observations]))
        for obs, vote in zip(observations, votes, strict=True):
            self._observe(obs, ts, vote.person_id)
        if regallery:
            for track in self._tracks.values():
                track.dirty = True
        decisions = self._decide(ts, "gallery" if regallery else "evidence")
        finals = self._finals(tracks)
        wants = tuple(info.track_id for info in tracks.tracks
                      if info.state is TrackState.CONFIRMED and self._wants(info.track_id))
        return IdentityUpdate(ts, tuple(decisions), finals, self._current(tracks), wants)

    # ------------------------------------------------------------------------------------

    def _observe(self, obs: Observation, ts: float, vote: str | None) -> None:
        s = self.settings
        emb = np.asarray(obs.embedding, np.float32).reshape(-1)
        t = self._tracks.get(obs.track_id)
        if t is None:
            t = self._tracks[obs.track_id] = _Track(obs.track_id, emb.shape[0], ts)
        t.last_ts = ts
        t.embeddings += 1
        weight = max(float(obs.quality), s.min_weight)
        main = t.main
        if (s.switch_evidence > 0 and main.count >= s.min_evidence
                and main.similarity(emb) < s.switch_below):
            ch = t.challenger
            if ch is not None and ch.similarity(emb) < s.switch_below:
                ch = None  # the held-aside faces do not agree with each other either
            if ch is None:
                ch = t.challenger = Evidence(t.dim)
            ch.add(emb, weight, float(obs.quality), obs.crop, ts, vote)
            if ch.count >= s.switch_evidence:
                t.main, t.challenger = ch, None
                t.switched = True
                t.dirty = True
            return
        t.challenger = None
        main.add(emb, weight, float(obs.quality), obs.crop, ts, vote)
        t.dirty = True

    def _decide(self, ts: float, default_reason: ChangeReason) -> list[Decision]:
        s = self.settings
        ready = [t for t in self._tracks.values() if t.dirty and t.main.count >= s.min_evidence]
        for t in self._tracks.values():
            t.dirty = False
        if not ready:
            return []
        found: list[Nearest] = self._matcher.nearest(np.stack([t.main.mean for t in ready]))
        enter, exit_ = self.enter_threshold, self.exit_threshold
        out: list[Decision] = []
        for t, nearest in zip(ready, found, strict=True):
            switched, t.switched = t.switched, False
            agreement = t.main.agreement(nearest.person_id)
            label = decide(t.label, nearest, enter, exit_, s.min_margin, agreement,
                           s.min_agreement)
            previous = t.label
            t.score, t.nearest_id = nearest.similarity, nearest.person_id
            t.margin, t.agreement = nearest.margin, agreement
            if label == previous and not (switched and previous is not None):
                continue
            t.label = label
            t.history.append(LabelSpan(ts, label.person_id, label.name, nearest.similarity))
            n = t.main.count
            if previous is None:
                if label.person_id is not None and label.name is not None:
                    out.append(Recognized(t.id, ts, label.person_id, label.name,
                                          nearest.similarity, n))
                else:
                    out.append(Unknown(t.id, ts, nearest.similarity, nearest.person_id, n))
            else:
                reason: ChangeReason = "appearance" if switched else default_reason
                out.append(Changed(t.id, ts, previous.person_id, previous.name, label.person_id,
                                   label.name, nearest.similarity, n, reason))
        return out

    def _finals(self, tracks: TrackUpdate) -> tuple[FinalIdentity, ...]:
        finals = []
        for ended in tracks.ended:
            gone = self._tracks.pop(ended.track_id, None)
            if gone is not None:
                finals.append(self._final(gone, ended.first_ts, ended.last_ts))
        live = {t.track_id for t in tracks.tracks}
        for tid in [k for k in self._tracks if k not in live]:  # ended in a missed update
            missed = self._tracks.pop(tid)
            finals.append(self._final(missed, missed.first_ts, missed.last_ts))
        return tuple(finals)

    def _current(self, tracks: TrackUpdate) -> tuple[TrackIdentity, ...]:
        out = []
        for info in tracks.tracks:
            if info.state is TrackState.TENTATIVE:
                continue
            t = self._tracks.get(info.track_id)
            if t is None:
                out.append(TrackIdentity(info.track_id, "pending", None, None, None, 0))
                continue
            label = t.label
            out.append(TrackIdentity(t.id, t.status(), label.person_id if label else None,
                                     label.name if label else None, t.score, t.main.count,
                                     t.margin, t.nearest_id))
        return tuple(out)

    def _wants(self, track_id: int) -> bool:
        t = self._tracks.get(track_id)
        if t is None:
            return True
        s = self.settings
        if t.challenger is not None or t.main.count < s.min_evidence:
            return True
        # Near the threshold, one more view can decide either way: ask for views (up to
        # `borderline_views`), which moves the mean towards the face's true likeness.
        return (t.score is not None and t.main.count < s.borderline_views
                and abs(t.score - self.enter_threshold) < s.borderline)

    def _final(self, t: _Track, first_ts: float, last_ts: float) -> FinalIdentity:
        label = t.label
        return FinalIdentity(
            t.id, first_ts, last_ts, t.status(), label.person_id if label else None,
            label.name if label else None, t.score, t.main.count, t.embeddings,
            tuple(t.history), t.main.snapshot, t.margin, t.agreement, t.nearest_id)
