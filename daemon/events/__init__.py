"""Typed, versioned events and their JSON form; the schema is `config/events.schema.json`."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from facewatch.events.codec import (
    EventFormatError,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from facewatch.events.schema import (
    CAMERA_STATES,
    EVENT_TYPES,
    SCHEMA_VERSION,
    BBox,
    CameraState,
    CameraStatus,
    Event,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
    new_event_id,
)

__all__ = [
    "CAMERA_STATES", "EVENT_TYPES", "SCHEMA_VERSION", "BBox", "CameraState", "CameraStatus",
    "Event", "EventFormatError", "FaceRecognized", "FaceUnknown", "TrackEnded", "TrackStarted",
    "from_dict", "from_json", "new_event_id", "schema_file", "to_dict", "to_json",
]


def schema_file() -> Traversable:
    """The JSON Schema (draft 2020-12) of every event, shipped as package data."""
    return files("facewatch.config") / "events.schema.json"
