"""The events the daemon publishes, as frozen records.

Every event carries:

- `v`: the schema version (1); it changes only on an incompatible change.  Consumers should
  ignore fields they do not know.
- `type`: `track.started`, `face.recognized`, `face.unknown`, `track.ended` or `camera.status`.
- `event_id`: unique and stable, assigned when the event is created (uuid4 hex), so a consumer
  can drop duplicates of an event delivered twice (MQTT QoS 1 is at-least-once).
- `camera`: the camera's name from the config.
- `ts`: when the frame the event is about was captured (epoch seconds); for camera.status,
  when the change was noticed.
- `seq` and `published_ts`: assigned by the publishing side (the outbox,
  `facewatch.publishers.outbox`), not by the producer: `seq` rises by one per event, in order,
  across restarts of the daemon too, so a gap means a lost event; `published_ts` is when it
  was handed to the transports.  Both are None until then.

The events that name a snapshot also carry `snapshot_url` and `crop_url` when the daemon's
HTTP API serves them (`facewatch.events.urls`), set by the publishing side too: links an
automation can hand to a phone notification.  None otherwise.

The JSON form is in `facewatch.events.codec`; `config/events.schema.json` describes it.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

if TYPE_CHECKING:
    from facewatch.streams.reader import StreamStatus

SCHEMA_VERSION = 1

BBox = tuple[float, float, float, float]
CameraState = Literal["online", "offline", "reconnecting"]
CAMERA_STATES: tuple[CameraState, ...] = ("online", "offline", "reconnecting")


def new_event_id() -> str:
    return uuid.uuid4().hex


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _score(name: str, value: float, low: float) -> float:
    # Clamped, not refused: float32 arithmetic puts a perfect match at 1.0000001.
    return round(min(max(_finite(name, value), low), 1.0), 4)


# Longer than any URL facewatch makes (api.public_url is at most 2,000 characters).
MAX_URL_CHARS = 2200


def _url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or not value.startswith(("http://", "https://"))
            or len(value) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 32 for ch in value)):
        raise ValueError(f"{name} must be an http(s) URL without spaces, got {str(value)[:80]!r}")
    return value


def _bbox(value: Any) -> BBox:
    values = tuple(value)
    if len(values) != 4:
        raise ValueError(f"bbox must be [x1, y1, x2, y2], got {len(values)} values")
    x1, y1, x2, y2 = (round(_finite("bbox", v), 2) for v in values)
    return (x1, y1, x2, y2)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event has; use one of the subclasses."""

    TYPE: ClassVar[str] = ""

    camera: str
    ts: float
    event_id: str = field(default_factory=new_event_id)
    seq: int | None = None
    published_ts: float | None = None

    def __post_init__(self) -> None:
        if type(self) is Event:
            raise TypeError("Event is abstract: create a TrackStarted, FaceRecognized, ...")
        if not self.camera:
            raise ValueError("camera must be a non-empty name")
        if not self.event_id:
            raise ValueError("event_id must not be empty")
        # Producers often hand numpy scalars; the record keeps plain Python values.
        self._set("ts", _finite("ts", self.ts))
        if self.seq is not None:
            if int(self.seq) < 1:
                raise ValueError(f"seq starts at 1, got {self.seq}")
            self._set("seq", int(self.seq))
        if self.published_ts is not None:
            self._set("published_ts", _finite("published_ts", self.published_ts))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def v(self) -> int:
        return SCHEMA_VERSION

    @property
    def published(self) -> bool:
        return self.seq is not None

    def stamped(self, seq: int, published_ts: float) -> Self:
        """A copy carrying the publishing side's sequence number and time."""
        return dataclasses.replace(self, seq=seq, published_ts=published_ts)


@dataclass(frozen=True, kw_only=True)
class _TrackEvent(Event):
    track_id: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.track_id) < 0:
            raise ValueError(f"track_id must be >= 0, got {self.track_id}")
        self._set("track_id", int(self.track_id))


@dataclass(frozen=True, kw_only=True)
class TrackStarted(_TrackEvent):
    """A face is being followed (after `tracking.min_hits` frames)."""

    TYPE: ClassVar[str] = "track.started"

    bbox: BBox  # x1, y1, x2, y2 in pixels of the camera's frame
    score: float  # detector confidence, 0..1

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("bbox", _bbox(self.bbox))
        self._set("score", _score("score", self.score, 0.0))


@dataclass(frozen=True, kw_only=True)
class FaceRecognized(_TrackEvent):
    """A track was named from the gallery (once per track and identity)."""

    TYPE: ClassVar[str] = "face.recognized"

    identity: str  # the gallery id
    name: str  # display name
    score: float  # cosine similarity to the gallery entry
    bbox: BBox
    snapshot: str | None = None  # absolute path of the saved face image
    snapshot_url: str | None = None  # the same image from the daemon's API, when it serves it
    crop_url: str | None = None  # the aligned face, from the API (once the library keeps it)
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the gallery's, as given

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.identity:
            raise ValueError("identity must not be empty")
        _check_urls(self)
        self._set("bbox", _bbox(self.bbox))
        self._set("score", _score("score", self.score, -1.0))
        # A plain dict copy: events cross process queues, and a MappingProxyType cannot be
        # pickled.  Frozen in spirit: nothing in facewatch mutates it.
        self._set("metadata", dict(self.metadata))


@dataclass(frozen=True, kw_only=True)
class FaceUnknown(_TrackEvent):
    """A track's face matches no one in the gallery (once per track)."""

    TYPE: ClassVar[str] = "face.unknown"

    score: float  # the best similarity found, below the threshold
    bbox: BBox
    snapshot: str | None = None
    snapshot_url: str | None = None
    crop_url: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_urls(self)
        self._set("bbox", _bbox(self.bbox))
        self._set("score", _score("score", self.score, -1.0))


@dataclass(frozen=True, kw_only=True)
class TrackEnded(_TrackEvent):
    """A track was lost for `tracking.max_lost_s`; says who it was, if anyone."""

    TYPE: ClassVar[str] = "track.ended"

    duration_s: float
    identity: str | None = None
    name: str | None = None
    snapshot: str | None = None  # the best snapshot of the track
    snapshot_url: str | None = None
    crop_url: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_urls(self)
        duration = round(_finite("duration_s", self.duration_s), 3)
        if duration < 0:
            raise ValueError(f"duration_s must be >= 0, got {duration}")
        self._set("duration_s", duration)


@dataclass(frozen=True, kw_only=True)
class CameraStatus(Event):
    """A camera went online, offline or is reconnecting."""

    TYPE: ClassVar[str] = "camera.status"

    state: CameraState
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.state not in CAMERA_STATES:
            raise ValueError(f"state must be one of {', '.join(CAMERA_STATES)}, got {self.state!r}")

    @classmethod
    def from_stream_status(cls, status: StreamStatus) -> CameraStatus:
        """The event for a camera reader's status record."""
        from facewatch.redact import redact

        state: CameraState = status.state.value  # StreamState has the same three values
        # The reason may quote a decoder's message; consumers of events must never see a
        # camera password, whichever library wrote it.
        return cls(camera=status.camera, ts=status.at, state=state, reason=redact(status.reason))


def _check_urls(event: FaceRecognized | FaceUnknown | TrackEnded) -> None:
    event._set("snapshot_url", _url("snapshot_url", event.snapshot_url))
    event._set("crop_url", _url("crop_url", event.crop_url))


# The events that can carry `snapshot_url` and `crop_url`.
WithMedia = FaceRecognized | FaceUnknown | TrackEnded

EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType({
    cls.TYPE: cls for cls in (TrackStarted, FaceRecognized, FaceUnknown, TrackEnded, CameraStatus)})
