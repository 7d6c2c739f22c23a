"""Typed records in and out of the identity stage; the daemon turns the decisions into events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ChangeReason = Literal["evidence", "appearance", "gallery"]
Status = Literal["pending", "known", "unknown"]


@dataclass(frozen=True)
class Observation:
    """One embedded face of a track in the current frame."""

    track_id: int
    embedding: np.ndarray = field(compare=False)  # (D,) unit vector
    quality: float  # 0..1, as from facewatch.detection.quality.face_quality
    crop: np.ndarray | None = field(default=None, compare=False)  # aligned RGB, for the snapshot


@dataclass(frozen=True)
class Label:
    """Who a track is: an enrolled person, or unknown (person_id None)."""

    person_id: str | None
    name: str | None

    @property
    def known(self) -> bool:
        return self.person_id is not None


UNKNOWN = Label(None, None)


@dataclass(frozen=True)
class Recognized:
    """A track's first decision names an enrolled person."""

    track_id: int
    capture_ts: float
    person_id: str
    name: str
    score: float  # cosine similarity of the track's aggregate to the person
    evidence: int  # embeddings behind the decision


@dataclass(frozen=True)
class Unknown:
    """A track's first decision: enough evidence, nobody in the gallery close enough."""

    track_id: int
    capture_ts: float
    score: float  # similarity to the nearest enrolled person (below the threshold)
    nearest_id: str | None
    evidence: int


@dataclass(frozen=True)
class Changed:
    """A decided track now has another label.

    reason: "evidence" (more embeddings moved the aggregate across a threshold), "appearance"
    (the embeddings stopped resembling the track's: the box now holds someone else, so the
    evidence was restarted), "gallery" (re-evaluated against a reloaded gallery).
    """

    track_id: int
    capture_ts: float
    previous_id: str | None  # None: was unknown
    previous_name: str | None
    person_id: str | None  # None: now unknown
    name: str | None
    score: float  # similarity to the nearest enrolled person
    evidence: int
    reason: ChangeReason


Decision = Recognized | Unknown | Changed


@dataclass(frozen=True)
class Snapshot:
    crop: np.ndarray = field(compare=False)  # (112, 112, 3) uint8 RGB, aligned
    quality: float
    capture_ts: float


@dataclass(frozen=True)
class LabelSpan:
    """A track's label from `since_ts` until the next span (or the track's end)."""

    since_ts: float
    person_id: str | None
    name: str | None
    score: float


@dataclass(frozen=True)
class TrackIdentity:
    """A live track's current identity, for tagging this frame's faces."""

    track_id: int
    status: Status  # "pending": not enough evidence yet
    person_id: str | None
    name: str | None
    score: float | None
    evidence: int
    margin: float | None = None  # score minus the next nearest person's
    nearest_id: str | None = None  # the nearest person, named or not


@dataclass(frozen=True)
class FinalIdentity:
    """Who a track was, once it has ended."""

    track_id: int
    first_ts: float
    last_ts: float
    status: Status  # the last label; "pending" if the track never had enough evidence
    person_id: str | None
    name: str | None
    score: float | None
    evidence: int  # embeddings behind the last label
    embeddings: int  # every embedding the track received
    history: tuple[LabelSpan, ...]  # every label it had, in order
    snapshot: Snapshot | None  # the best-quality face behind the last label
    margin: float | None = None  # the last score minus the next nearest person's
    agreement: float | None = None  # share of the views whose own nearest was that person
    nearest_id: str | None = None  # the nearest person at the last decision, named or not


@dataclass(frozen=True)
class IdentityUpdate:
    capture_ts: float
    decisions: tuple[Decision, ...]
    finals: tuple[FinalIdentity, ...]
    current: tuple[TrackIdentity, ...]  # every confirmed live track
    # Tracks whose identity is waiting on evidence (too little yet, or a possible switch of
    # person); give them to `EmbedPolicy.select(requested=...)` on the next frame.
    wants_evidence: tuple[int, ...]

    def identity(self, track_id: int) -> TrackIdentity | None:
        return next((t for t in self.current if t.track_id == track_id), None)
