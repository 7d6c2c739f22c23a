"""Events: records, their JSON form, and the JSON Schema shipped in config/events.schema.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from facewatch.events import (
    EVENT_TYPES,
    CameraStatus,
    Event,
    EventFormatError,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
    from_dict,
    from_json,
    schema_file,
    to_dict,
    to_json,
)
from facewatch.publishers import Fanout
from facewatch.publishers.jsonl import JsonlPublisher
from facewatch.streams.reader import StreamState, StreamStatus
from tests.support.publishing import stamped_sender

TS = 1_718_000_000.125


def examples() -> list[Event]:
    """One event of every type, as producers create them (numpy values included)."""
    return [
        CameraStatus(camera="door", ts=TS - 5, state="online", reason="connected"),
        TrackStarted(camera="door", ts=TS, track_id=3,
                     bbox=np.array([412.5, 80, 530.25, 226], np.float32),  # type: ignore[arg-type]
                     score=np.float32(0.987)),  # type: ignore[arg-type]
        FaceRecognized(camera="door", ts=TS + 0.4, track_id=3, identity="ada", name="Ada Lovelace",
                       score=np.float64(0.7123), bbox=(410.0, 81.5, 529.0, 225.0),
                       snapshot="/var/lib/facewatch/snapshots/door/20240610-061320-3.jpg",
                       snapshot_url="http://nvr.lan:8765/api/tracks/3/snapshot?sig=0123abcd",
                       crop_url="http://nvr.lan:8765/api/tracks/3/crop?sig=4567ef01",
                       metadata={"team": "lab", "badge": 17, "tags": ["staff"]}),
        FaceUnknown(camera="yard-2", ts=TS + 1, track_id=np.int64(4),  # type: ignore[arg-type]
                    bbox=[10, 20, 50, 70], score=0.21, snapshot=None),  # type: ignore[arg-type]
        TrackEnded(camera="door", ts=TS + 4.2, track_id=3, duration_s=4.2, identity="ada",
                   name="Ada Lovelace", snapshot="/var/lib/facewatch/snapshots/door/20240610-061320-3.jpg"),
        TrackEnded(camera="yard-2", ts=TS + 3, track_id=4, duration_s=2.0),
        CameraStatus(camera="yard-2", ts=TS + 9, state="reconnecting",
                     reason="unreachable: connection refused"),
        CameraStatus(camera="yard-2", ts=TS + 10, state="offline", reason="eof"),
    ]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(schema_file().read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def published(events: list[Event], tmp_path: Path) -> list[dict[str, Any]]:
    """`events` as the daemon writes them: through the fan-out into a JSON-lines file."""
    path = tmp_path / "events.jsonl"
    fanout = Fanout([JsonlPublisher(path)])
    publish = stamped_sender(fanout)
    fanout.start()
    for event in events:
        publish(event)
    fanout.stop()
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_every_type_validates_against_the_schema(tmp_path: Path,
                                                  validator: jsonschema.protocols.Validator) -> None:
    lines = published(examples(), tmp_path)
    assert {line["type"] for line in lines} == set(EVENT_TYPES)
    for line in lines:
        validator.validate(line)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_the_json_form(tmp_path: Path) -> None:
    recognized = published(examples(), tmp_path)[2]
    assert list(recognized) == ["v", "type", "seq", "event_id", "camera", "ts", "published_ts",
                                "track_id", "identity", "name", "score", "bbox", "snapshot",
                                "snapshot_url", "crop_url", "metadata"]
    assert recognized["snapshot_url"] == "http://nvr.lan:8765/api/tracks/3/snapshot?sig=0123abcd"
    # without the API, the links are null: present, so a consumer need not test for the key
    unknown = published(examples()[3:4], tmp_path / "unknown")[0]
    assert unknown["snapshot_url"] is None and unknown["crop_url"] is None
    assert recognized["v"] == 1 and recognized["type"] == "face.recognized"
    assert recognized["ts"] == TS + 0.4 and recognized["published_ts"] >= recognized["ts"]
    assert recognized["bbox"] == [410.0, 81.5, 529.0, 225.0]
    assert recognized["score"] == 0.7123
    assert recognized["metadata"] == {"team": "lab", "badge": 17, "tags": ["staff"]}
    started = published(examples()[1:2], tmp_path / "started")[0]
    assert started["bbox"] == [412.5, 80.0, 530.25, 226.0] and started["score"] == 0.987
    assert isinstance(started["track_id"], int)


@pytest.mark.parametrize("mutate", [
    lambda e: e.pop("event_id"),
    lambda e: e.update(v=2),
    lambda e: e.update(seq=0),
    lambda e: e.update(camera="Front Door"),
    lambda e: e.update(bbox=[1, 2, 3]),
    lambda e: e.update(surprise=True),
    lambda e: e.update(type="face.unknown"),  # face.unknown has no identity
    lambda e: e.update(score=1.5),
    lambda e: e.update(snapshot_url="file:///etc/passwd"),
    lambda e: e.update(crop_url="http://nvr.lan/a b"),
    lambda e: e.update(crop_url=3),
])
def test_the_schema_is_not_permissive(tmp_path: Path, validator: jsonschema.protocols.Validator,
                                      mutate: Any) -> None:
    recognized = published(examples()[2:3], tmp_path)[0]
    mutate(recognized)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(recognized)


def test_round_trip() -> None:
    for i, event in enumerate(examples(), start=1):
        stamped = event.stamped(i, TS + 20)
        again = from_json(to_json(stamped))
        assert again == stamped and type(again) is type(stamped)
        assert to_dict(again) == to_dict(stamped)


def test_identity_and_stamping() -> None:
    a, b = examples()[1], examples()[1]
    assert a.event_id != b.event_id and len(a.event_id) == 32
    assert a.seq is None and a.published_ts is None and not a.published
    stamped = a.stamped(7, TS + 1)
    assert (stamped.seq, stamped.published_ts, stamped.event_id) == (7, TS + 1, a.event_id)
    assert a.seq is None  # frozen: stamping makes a copy
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.camera = "x"  # type: ignore[misc]


def test_producer_values_are_normalised() -> None:
    started = examples()[1]
    assert isinstance(started, TrackStarted)
    assert all(type(v) is float for v in started.bbox) and type(started.score) is float
    unknown = examples()[3]
    assert isinstance(unknown, FaceUnknown) and type(unknown.track_id) is int
    # float32 rounding can put a perfect match just above 1: clamped, not refused.
    assert FaceUnknown(camera="c", ts=1, track_id=1, bbox=(0, 0, 1, 1), score=1.0000001).score == 1.0


def test_links_must_be_plain_http_urls() -> None:
    base: dict[str, Any] = {"camera": "door", "ts": TS, "track_id": 1, "bbox": (0, 0, 1, 1), "score": 0.5}
    for bad in ("file:///etc/passwd", "javascript:alert(1)", "http://a b", "http://a\nb", "x" * 3000):
        with pytest.raises(ValueError, match="snapshot_url"):
            FaceUnknown(**base, snapshot_url=bad)
    # an event written by an older daemon, without the links, still reads
    old = to_dict(FaceUnknown(**base).stamped(1, TS))
    del old["snapshot_url"], old["crop_url"]
    assert from_dict(old).snapshot_url is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("kwargs", [
    {"ts": float("nan")},
    {"bbox": (1, 2, 3)},
    {"track_id": -1},
    {"camera": ""},
    {"score": float("inf")},
])
def test_invalid_records_are_refused(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"camera": "door", "ts": TS, "track_id": 1, "bbox": (0, 0, 1, 1), "score": 0.5}
    with pytest.raises(ValueError):
        TrackStarted(**{**base, **kwargs})


def test_camera_status_from_a_stream_status() -> None:
    status = StreamStatus(camera="door", state=StreamState.RECONNECTING, cause="unreachable",
                          reason="unreachable: connection refused", at=TS, attempt=2, retry_in_s=4.0)
    event = CameraStatus.from_stream_status(status)
    assert (event.camera, event.state, event.reason, event.ts) == \
        ("door", "reconnecting", "unreachable: connection refused", TS)
    with pytest.raises(ValueError):
        CameraStatus(camera="door", ts=TS, state="sleeping")  # type: ignore[arg-type]


def test_from_json_refuses_what_it_does_not_know() -> None:
    good = to_dict(examples()[1].stamped(1, TS))
    bad: Any
    for bad in ([], {**good, "v": 2}, {**good, "type": "face.smiled"}, {**good, "track_id": "x"},
                {k: v for k, v in good.items() if k != "bbox"}):
        with pytest.raises(EventFormatError):
            from_dict(bad)
    with pytest.raises(EventFormatError):
        from_json(b"{not json")
    # Unknown fields from a newer daemon of the same version are ignored.
    assert from_dict({**good, "added_later": 1}) == from_dict(good)


def test_metadata_is_copied_picklable_and_serialisable() -> None:
    import datetime
    import pickle

    given = {"since": datetime.date(2024, 1, 2)}
    event = FaceRecognized(camera="door", ts=TS, track_id=1, identity="ada", name="Ada",
                           score=0.5, bbox=(0, 0, 1, 1), metadata=given)
    given["later"] = 1  # the caller's dict is not the event's
    assert dict(event.metadata) == {"since": datetime.date(2024, 1, 2)}
    # events cross process queues (pickled) between the engine and the publisher
    assert pickle.loads(pickle.dumps(event)) == event
    assert json.loads(to_json(event))["metadata"] == {"since": "2024-01-02"}
