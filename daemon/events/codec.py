"""Events to and from their JSON form (UTF-8, one object, no newlines inside).

    {"v": 1, "type": "face.recognized", "seq": 7, "event_id": "9f0c...", "camera": "door",
     "ts": 1718000000.125, "published_ts": 1718000000.31, "track_id": 3, "identity": "ada",
     "name": "Ada Lovelace", "score": 0.71, "bbox": [412.5, 80.0, 530.25, 226.0],
     "snapshot": "/var/lib/facewatch/snapshots/door/...jpg",
     "snapshot_url": "http://nvr.lan:8765/api/tracks/3/snapshot?sig=...",
     "crop_url": "http://nvr.lan:8765/api/tracks/3/crop?sig=...", "metadata": {"team": "lab"}}

The common fields come first, then the type's own, in a fixed order.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

from facewatch.events.schema import EVENT_TYPES, SCHEMA_VERSION, Event

_COMMON = ("v", "type", "seq", "event_id", "camera", "ts", "published_ts")


class EventFormatError(ValueError):
    """Text or data that is not an event of a known type and version."""


def to_dict(event: Event) -> dict[str, Any]:
    """The event as JSON-ready data (lists, not tuples; plain dicts)."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "type": event.type, "seq": event.seq,
                           "event_id": event.event_id, "camera": event.camera, "ts": event.ts,
                           "published_ts": event.published_ts}
    for f in dataclasses.fields(event):
        if f.name in out:
            continue
        value = getattr(event, f.name)
        if f.name == "bbox":
            value = list(value)
        elif f.name == "metadata":
            value = dict(value)
        out[f.name] = value
    return out


def to_json(event: Event) -> bytes:
    return json.dumps(to_dict(event), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False, default=_json_default).encode("utf-8")


def from_dict(data: Any) -> Event:
    """The event `data` describes; `EventFormatError` if it is not one this version knows."""
    if not isinstance(data, dict):
        raise EventFormatError(f"an event is a JSON object, got {type(data).__name__}")
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise EventFormatError(f"event version {version!r} is not supported (expected {SCHEMA_VERSION})")
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EventFormatError(f"unknown event type {kind!r}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    # Unknown fields are ignored: a newer daemon may add some within the same version.
    kwargs = {k: v for k, v in data.items() if k in names}
    if "bbox" in kwargs and isinstance(kwargs["bbox"], list):
        kwargs["bbox"] = tuple(kwargs["bbox"])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise EventFormatError(f"{kind} event: {exc}") from None


# Nesting levels accepted in an event: its free-form metadata comes from gallery YAML, which
# is read to facewatch.yamlfile.MAX_DEPTH levels.  Anything deeper is not from a daemon, and
# would blow Python's recursion limit wherever it is next walked (printed, dumped).
MAX_DEPTH = 64


def from_json(text: str | bytes) -> Event:
    """The event in `text`; `EventFormatError` for anything else, whoever sent it."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventFormatError(f"not JSON: {exc}") from None
    except RecursionError:  # thousands of "[": the decoder's own recursion guard
        raise EventFormatError(f"nested more than {MAX_DEPTH} levels deep") from None
    if _depth(data) > MAX_DEPTH:
        raise EventFormatError(f"nested more than {MAX_DEPTH} levels deep")
    return from_dict(data)


def _depth(data: Any) -> int:
    """How many lists and objects deep `data` is, without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, level = stack.pop()
        children = value.values() if isinstance(value, dict) else value \
            if isinstance(value, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def _json_default(value: Any) -> Any:
    # Gallery metadata is free-form YAML, which has dates; anything else is shown as text.
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)
