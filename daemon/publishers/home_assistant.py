"""Home Assistant over MQTT: discovery configs for every camera and every person in the
gallery, and the retained states behind them.  `MqttPublisher` sends what this class returns.

Entities (all unavailable while `<prefix>/available` says "offline"):

per camera, device "facewatch <camera>":

    sensor        Last recognised       <prefix>/<camera>/face.recognized  the name; the event's
                                        fields as attributes (the event topic itself)
    binary_sensor Someone recognised    the same topic; on for `HA_OFF_DELAY_S` s per event
    binary_sensor Unknown face          <prefix>/<camera>/unknown_face  ON while a face nobody in
                                        the gallery matches is tracked, else OFF (retained)
    image         Last recognised face  <prefix>/<camera>/last_face  the JPEG snapshot of the last
                                        recognised face (retained); who, when and its
                                        snapshot_url in <prefix>/<camera>/last_face/attributes

per person in the gallery, device "<their name>":

    sensor        Last seen             <prefix>/people/<id>/last_seen  when (a timestamp); the
                                        camera, score, track and links as attributes (retained)
    sensor        Last camera           the same topic: the camera's name
    binary_sensor Presence              <prefix>/people/<id>/presence  ON while they were seen in
                                        the last `presence_minutes`, else OFF (retained)

The image goes as bytes on a topic (`image_topic`), not as a link to the API (`url_topic`): it
works with the API off or out of Home Assistant's reach, needs no token, and Home Assistant
keeps showing the last face while facewatch restarts.  Links to the API are in the events and
in the attributes (`snapshot_url`), for notifications.

People come from the gallery file, read here at start and again whenever it changes (polled
every `GALLERY_POLL_S`): the publisher process learns them without a channel from the
inference process.  A person who appears gets their entities; one who is deleted gets an empty
retained config (Home Assistant removes the entities) and their retained states cleared.  A
gallery that cannot be read leaves the people as they are (the inference process reports the
error and keeps its running gallery too).  A recognised person not in the list yet (the
inference process reloaded first) is added from the event.

Presence turns off by `tick()` (the publisher loop calls it several times a second), not only
when an event arrives.  What must outlive a restart -- who was last seen where and when, which
people and cameras have entities -- is kept in `<state_dir>/home_assistant.json`: after a
restart presence is on again only for whoever was seen within the window, and people deleted
(or cameras removed) while the daemon was stopped have their entities removed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facewatch import __version__
from facewatch.config.daemon import DaemonConfig
from facewatch.config.mqtt import MqttOutput
from facewatch.config.resolve import gallery_cache_dir
from facewatch.events import CameraStatus, Event, FaceRecognized, FaceUnknown, TrackEnded

log = logging.getLogger(__name__)

AVAILABLE = "online"
UNAVAILABLE = "offline"
ON, OFF = "ON", "OFF"
HA_OFF_DELAY_S = 30
STATE_FILE = "home_assistant.json"
GALLERY_POLL_S = 2.0
# An unknown face's track normally ends with track.ended; if that never comes (an inference
# process killed outright), the sensor must not stay on for ever.
UNKNOWN_MAX_S = 300.0
# Snapshots are a few hundred pixels; anything far bigger is not one.
MAX_IMAGE_BYTES = 2 * 1024 * 1024
_STATE_VERSION = 1
_NOT_TOPIC_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True)
class Entity:
    component: str  # sensor, binary_sensor, image
    object_id: str  # [A-Za-z0-9_-]: the discovery topic's last level but one
    config: dict[str, Any]


@dataclass(frozen=True)
class Sighting:
    """When and where a person was last recognised."""

    ts: float
    camera: str
    score: float
    track_id: int
    snapshot_url: str | None = None
    crop_url: str | None = None


def iso_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="milliseconds")


def person_slug(person_id: str) -> str:
    """The person's id as a discovery object id ([A-Za-z0-9_-]); an id that had to change
    gets a short hash of itself, so that `a.b` and `a_b` stay apart."""
    slug = _NOT_TOPIC_ID.sub("_", person_id)
    if slug != person_id:
        slug = f"{slug}_{hashlib.sha256(person_id.encode()).hexdigest()[:8]}"
    return slug


class Layout:
    """Every topic and entity for one `prefix` and `discovery_prefix`."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.node = _NOT_TOPIC_ID.sub("_", prefix)
        self.availability = f"{prefix}/available"

    def camera_topic(self, camera: str, leaf: str) -> str:
        return f"{self.prefix}/{camera}/{leaf}"

    def person_topic(self, person_id: str, leaf: str) -> str:
        return f"{self.prefix}/people/{person_id}/{leaf}"

    def config_topic(self, entity: Entity) -> str:
        return f"{self.discovery_prefix}/{entity.component}/{self.node}/{entity.object_id}/config"

    def _entity(self, component: str, object_id: str, device: dict[str, Any],
                config: dict[str, Any]) -> Entity:
        # `availability` as a list: the form Home Assistant documents for every platform
        # (its image page lists no top-level payload_available)
        return Entity(component, object_id, {
            **config, "unique_id": f"{self.node}_{object_id}",
            "availability": [{"topic": self.availability, "payload_available": AVAILABLE,
                              "payload_not_available": UNAVAILABLE}],
            "device": device, "origin": {"name": "facewatch", "sw_version": __version__}})

    def camera_entities(self, camera: str) -> list[Entity]:
        device = {"identifiers": [f"{self.node}_{camera}"], "name": f"facewatch {camera}",
                  "manufacturer": "facewatch", "model": "face recognition",
                  "sw_version": __version__}
        recognized = self.camera_topic(camera, "face.recognized")
        face = self.camera_topic(camera, "last_face")
        return [
            self._entity("sensor", f"{camera}_last_name", device, {
                "name": "Last recognised", "state_topic": recognized,
                "value_template": "{{ value_json.name }}", "json_attributes_topic": recognized,
                "icon": "mdi:face-recognition"}),
            self._entity("binary_sensor", f"{camera}_recognised", device, {
                "name": "Someone recognised", "state_topic": recognized, "value_template": ON,
                "payload_on": ON, "off_delay": HA_OFF_DELAY_S, "device_class": "occupancy"}),
            self._entity("binary_sensor", f"{camera}_unknown_face", device, {
                "name": "Unknown face", "state_topic": self.camera_topic(camera, "unknown_face"),
                "payload_on": ON, "payload_off": OFF, "device_class": "occupancy",
                "icon": "mdi:account-question"}),
            self._entity("image", f"{camera}_last_face", device, {
                "name": "Last recognised face", "image_topic": face,
                "content_type": "image/jpeg", "json_attributes_topic": f"{face}/attributes"}),
        ]

    def camera_state_topics(self, camera: str) -> list[str]:
        face = self.camera_topic(camera, "last_face")
        return [self.camera_topic(camera, "unknown_face"), face, f"{face}/attributes"]

    def person_entities(self, person_id: str, name: str) -> list[Entity]:
        slug = person_slug(person_id)
        device = {"identifiers": [f"{self.node}_person_{slug}"], "name": name,
                  "manufacturer": "facewatch", "model": "person in the gallery",
                  "sw_version": __version__}
        seen = self.person_topic(person_id, "last_seen")
        return [
            self._entity("sensor", f"person_{slug}_last_seen", device, {
                "name": "Last seen", "state_topic": seen, "value_template": "{{ value_json.time }}",
                "device_class": "timestamp", "json_attributes_topic": seen,
                "icon": "mdi:account-clock"}),
            self._entity("sensor", f"person_{slug}_last_camera", device, {
                "name": "Last camera", "state_topic": seen,
                "value_template": "{{ value_json.camera }}", "icon": "mdi:cctv"}),
            self._entity("binary_sensor", f"person_{slug}_presence", device, {
                "name": "Presence", "state_topic": self.person_topic(person_id, "presence"),
                "payload_on": ON, "payload_off": OFF, "device_class": "presence"}),
        ]

    def person_state_topics(self, person_id: str) -> list[str]:
        return [self.person_topic(person_id, "last_seen"), self.person_topic(person_id, "presence")]

    def discovery(self, entities: Iterable[Entity]) -> list[Message]:
        return [Message(self.config_topic(e), json.dumps(e.config).encode()) for e in entities]

    def removal(self, entities: Iterable[Entity], state_topics: Iterable[str]) -> list[Message]:
        """Empty retained configs (Home Assistant deletes the entities), then empty retained
        states (the broker forgets them): in that order, so no live entity sees an empty state."""
        return ([Message(self.config_topic(e), b"") for e in entities]
                + [Message(topic, b"") for topic in state_topics])


def discovery_messages(settings: MqttOutput, cameras: Sequence[str]) -> list[tuple[str, str]]:
    """(topic, JSON config) of the Home Assistant entities of `cameras`."""
    layout = Layout(settings.prefix, settings.discovery_prefix)
    return [(m.topic, m.payload.decode())
            for camera in cameras for m in layout.discovery(layout.camera_entities(camera))]


@dataclass
class _Face:
    """The last recognised face shown for a camera."""

    track_id: int
    jpeg: bytes
    attributes: dict[str, Any]


class HomeAssistant:
    def __init__(self, settings: MqttOutput, cameras: Sequence[str], *,
                 gallery: Path | None = None, gallery_state: Path | None = None,
                 snapshots_dir: Path | None = None, state_file: Path | None = None,
                 clock: Callable[[], float] = time.time,
                 gallery_poll_s: float = GALLERY_POLL_S) -> None:
        """`gallery`: the gallery file or folder whose people get entities (None: people only
        as they are recognised); `gallery_state`: the daemon's gallery state folder, whose last
        good gallery stands in for a broken file at start; `snapshots_dir`: the only folder
        images are read from; `state_file`: what outlives a restart (None: nothing does);
        `clock`: wall-clock seconds (event times are), injectable for tests."""
        self.layout = Layout(settings.prefix, settings.discovery_prefix)
        self.presence_s = float(settings.presence_minutes) * 60.0
        self.cameras = tuple(cameras)
        self.gallery = gallery
        self.gallery_state = gallery_state
        self.snapshots_dir = snapshots_dir.resolve() if snapshots_dir is not None else None
        self.state_file = state_file
        self._clock = clock
        self._gallery_poll_s = gallery_poll_s
        # Under the lock: the loop thread calls on_event and tick, paho's thread announce.
        self._lock = threading.Lock()
        self._people: dict[str, str] = {}  # id → name, in the gallery's order
        self._seen: dict[str, Sighting] = {}
        self._present: dict[str, bool] = {}
        self._unknown: dict[str, dict[int, float]] = {c: {} for c in self.cameras}  # track → since
        self._faces: dict[str, _Face] = {}
        self._pending: list[Message] = []  # removals found at start, sent with the first announce
        self._gallery_mark: object = None
        self._next_poll = 0.0
        self._save_failed = False

    # -- the publisher's calls --------------------------------------------------------------------

    def start(self) -> None:
        """Read what the last run knew, and the gallery.  Entities of people and cameras that
        went away meanwhile are removed with the first `announce()`."""
        stored = self._load_state()
        self._gallery_mark = self._gallery_fingerprint()
        people = self._read_gallery(at_start=True)
        with self._lock:
            if people is None:  # no gallery to read: whoever had entities keeps them
                people = {pid: str(p.get("name") or pid) for pid, p in stored["people"].items()}
            self._people = people
            old = Layout(stored["prefix"], stored["discovery_prefix"])
            moved = (old.prefix, old.discovery_prefix) != (self.layout.prefix,
                                                           self.layout.discovery_prefix)
            gone = [(pid, str(entry.get("name") or pid)) for pid, entry in stored["people"].items()
                    if moved or pid not in people]
            for pid, name in gone:
                self._pending += old.removal(old.person_entities(pid, name),
                                             old.person_state_topics(pid))
            cameras_gone = [c for c in stored["cameras"] if moved or c not in self.cameras]
            for camera in cameras_gone:
                self._pending += old.removal(old.camera_entities(camera),
                                             old.camera_state_topics(camera))
            now = self._clock()
            for pid, entry in stored["people"].items():
                sighting = _sighting(entry.get("last_seen"))
                if pid in people and sighting is not None:
                    self._seen[pid] = sighting
            self._present = {pid: self._within(pid, now) for pid in people}
        if gone or cameras_gone:
            log.info("Home Assistant: removing the entities of %d person(s) and %d camera(s) "
                     "no longer configured%s", len(gone), len(cameras_gone),
                     " (the topic prefixes changed)" if moved else "")
        self._save()

    def announce(self) -> list[Message]:
        """Everything Home Assistant needs, for a new connection or a restarted Home Assistant:
        pending removals, every discovery config, then every state (retained)."""
        with self._lock:
            self._expire(self._clock())
            out, self._pending = self._pending, []
            out += self.layout.discovery(e for c in self.cameras for e in self.layout.camera_entities(c))
            out += self.layout.discovery(e for pid, name in self._people.items()
                                         for e in self.layout.person_entities(pid, name))
            for camera in self.cameras:
                out.append(self._unknown_state(camera))
                face = self._faces.get(camera)
                if face is not None:
                    out += self._face_messages(camera, face)
            for pid in self._people:
                out.append(self._presence_state(pid))
                if pid in self._seen:
                    out.append(self._seen_state(pid))
            return out

    def on_event(self, event: Event) -> list[Message]:
        """The state changes `event` makes (call it once the event itself went out)."""
        out: list[Message] = []
        save = False
        with self._lock:
            if isinstance(event, FaceRecognized):
                out += self._recognized(event)
                save = True
            elif isinstance(event, FaceUnknown):
                out += self._unknown_changed(event.camera, add=event.track_id)
            elif isinstance(event, TrackEnded):
                out += self._unknown_changed(event.camera, remove=event.track_id)
                face = self._faces.get(event.camera)
                if face is not None and face.track_id == event.track_id and event.identity is not None:
                    out += self._show_face(event.camera, event.track_id, event.snapshot,
                                           face.attributes, event.snapshot_url)
            elif isinstance(event, CameraStatus) and event.state != "online":
                out += self._unknown_changed(event.camera, clear=True)
        if save:
            self._save()
        return out

    def tick(self) -> list[Message]:
        """Presence that ran out, unknown faces whose end never came, and gallery edits."""
        now = self._clock()
        with self._lock:
            out = self._expire(now)
            for camera, tracks in self._unknown.items():
                stale = [t for t, since in tracks.items() if now - since >= UNKNOWN_MAX_S]
                for track in stale:
                    out += self._unknown_changed(camera, remove=track)
        if now >= self._next_poll:
            self._next_poll = now + self._gallery_poll_s
            out += self._poll_gallery()
        return out

    def stop(self) -> None:
        self._save()

    @property
    def people(self) -> dict[str, str]:
        with self._lock:
            return dict(self._people)

    # -- people -----------------------------------------------------------------------------------

    def _recognized(self, event: FaceRecognized) -> list[Message]:
        out: list[Message] = []
        pid = event.identity
        new = pid not in self._people
        if new:  # the inference process reloaded the gallery first
            self._people[pid] = event.name
            out += self.layout.discovery(self.layout.person_entities(pid, event.name))
        previous = self._seen.get(pid)
        if previous is None or event.ts >= previous.ts:
            self._seen[pid] = Sighting(event.ts, event.camera, event.score, event.track_id,
                                       event.snapshot_url, event.crop_url)
            out.append(self._seen_state(pid, event.name))
        present = self._within(pid, self._clock())
        if new or present != self._present.get(pid):
            self._present[pid] = present
            out.append(self._presence_state(pid))
        out += self._unknown_changed(event.camera, remove=event.track_id)
        attributes = {"name": event.name, "identity": pid, "time": iso_time(event.ts),
                      "score": event.score, "track_id": event.track_id,
                      "snapshot_url": event.snapshot_url}
        out += self._show_face(event.camera, event.track_id, event.snapshot, attributes,
                               event.snapshot_url)
        return out

    def _within(self, pid: str, now: float) -> bool:
        seen = self._seen.get(pid)
        return seen is not None and now - seen.ts < self.presence_s

    def _expire(self, now: float) -> list[Message]:
        out = []
        for pid, present in self._present.items():
            if present and not self._within(pid, now):
                self._present[pid] = False
                out.append(self._presence_state(pid))
        return out

    def _add_people(self, people: dict[str, str]) -> list[Message]:
        out = []
        for pid, name in people.items():
            self._people[pid] = name
            self._present.setdefault(pid, False)
            out += self.layout.discovery(self.layout.person_entities(pid, name))
            out.append(self._presence_state(pid))
        return out

    def _poll_gallery(self) -> list[Message]:
        mark = self._gallery_fingerprint()
        if mark == self._gallery_mark:
            return []
        self._gallery_mark = mark
        people = self._read_gallery(at_start=False)
        if people is None:
            return []
        out: list[Message] = []
        with self._lock:
            gone = [pid for pid in self._people if pid not in people]
            for pid in gone:
                out += self.layout.removal(self.layout.person_entities(pid, self._people[pid]),
                                           self.layout.person_state_topics(pid))
                del self._people[pid]
                self._seen.pop(pid, None)
                self._present.pop(pid, None)
            changed = {pid: name for pid, name in people.items() if self._people.get(pid) != name}
            out += self._add_people(changed)
            self._people = {pid: people[pid] for pid in people}  # the gallery's order
            if gone or changed:
                log.info("Home Assistant: gallery changed: %d person(s) added or renamed, %d "
                         "removed", len(changed), len(gone))
        if gone or changed:
            self._save()
        return out

    def _read_gallery(self, at_start: bool) -> dict[str, str] | None:
        """The gallery's people (id → name), or None when there is no gallery to read."""
        from facewatch.errors import FacewatchError
        from facewatch.gallery.spec import load_gallery_spec

        if self.gallery is None or not os.path.lexists(self.gallery):
            return None
        try:
            spec = load_gallery_spec(self.gallery)
        except FacewatchError as exc:
            # The inference process logs the error and keeps its running gallery: so do we.
            log.debug("Home Assistant: gallery not read: %s", exc)
            if not at_start or self.gallery_state is None:
                return None
            from facewatch.gallery import last_good

            remembered = last_good.recall(self.gallery_state)
            return {p.id: p.name for p in remembered.people} if remembered is not None else None
        return {p.id: p.name for p in spec.people}

    def _gallery_fingerprint(self) -> object:
        """What changes when the gallery's people may have: the file (or the folder and its
        person folders, for a folder gallery)."""
        if self.gallery is None:
            return None
        try:
            st = os.stat(self.gallery)
            mark: list[object] = [(st.st_ino, st.st_mtime_ns, st.st_size)]
            if self.gallery.is_dir():
                for sub in sorted(os.scandir(self.gallery), key=lambda d: d.name):
                    if sub.is_dir():
                        mark.append((sub.name, sub.stat().st_mtime_ns))
            return tuple(mark)
        except OSError:
            return "missing"

    # -- states -----------------------------------------------------------------------------------

    def _presence_state(self, pid: str) -> Message:
        on = self._present.get(pid, False)
        return Message(self.layout.person_topic(pid, "presence"), (ON if on else OFF).encode())

    def _seen_state(self, pid: str, name: str | None = None) -> Message:
        seen = self._seen[pid]
        payload = {"time": iso_time(seen.ts), "ts": seen.ts, "camera": seen.camera,
                   "name": name or self._people.get(pid, pid), "score": seen.score,
                   "track_id": seen.track_id, "snapshot_url": seen.snapshot_url,
                   "crop_url": seen.crop_url}
        return Message(self.layout.person_topic(pid, "last_seen"), json.dumps(payload).encode())

    def _unknown_changed(self, camera: str, add: int | None = None, remove: int | None = None,
                         clear: bool = False) -> list[Message]:
        tracks = self._unknown.setdefault(camera, {})
        before = bool(tracks)
        if add is not None:
            tracks.setdefault(add, self._clock())
        if remove is not None:
            tracks.pop(remove, None)
        if clear:
            tracks.clear()
        return [] if bool(tracks) == before else [self._unknown_state(camera)]

    def _unknown_state(self, camera: str) -> Message:
        on = bool(self._unknown.get(camera))
        return Message(self.layout.camera_topic(camera, "unknown_face"), (ON if on else OFF).encode())

    def _show_face(self, camera: str, track_id: int, snapshot: str | None,
                   attributes: dict[str, Any], snapshot_url: str | None) -> list[Message]:
        jpeg = self._jpeg(snapshot)
        if jpeg is None:
            return []
        shown = self._faces.get(camera)
        if shown is not None and shown.track_id == track_id and shown.jpeg == jpeg:
            return []
        face = _Face(track_id, jpeg, {**attributes, "snapshot_url": snapshot_url
                                      or attributes.get("snapshot_url")})
        self._faces[camera] = face
        return self._face_messages(camera, face)

    def _face_messages(self, camera: str, face: _Face) -> list[Message]:
        topic = self.layout.camera_topic(camera, "last_face")
        return [Message(topic, face.jpeg),
                Message(f"{topic}/attributes", json.dumps(face.attributes).encode())]

    def _jpeg(self, snapshot: str | None) -> bytes | None:
        """The snapshot's bytes, if it is a JPEG inside the snapshots folder."""
        if snapshot is None or self.snapshots_dir is None:
            return None
        path = Path(snapshot)
        try:
            if not path.resolve().is_relative_to(self.snapshots_dir):
                log.debug("Home Assistant: %s is outside the snapshots folder; not sent", path)
                return None
            with path.open("rb") as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        except OSError:
            return None  # deleted by retention meanwhile, or a disk gone
        if len(data) > MAX_IMAGE_BYTES or not data.startswith(b"\xff\xd8"):
            return None
        return data

    # -- what outlives a restart ------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"prefix": self.layout.prefix,
                                 "discovery_prefix": self.layout.discovery_prefix,
                                 "cameras": [], "people": {}}
        if self.state_file is None:
            return empty
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); Home Assistant's entities start afresh",
                        self.state_file, exc)
            return empty
        if (not isinstance(data, dict) or data.get("version") != _STATE_VERSION
                or not isinstance(data.get("people"), dict) or not isinstance(data.get("cameras"), list)
                or not isinstance(data.get("prefix"), str)
                or not isinstance(data.get("discovery_prefix"), str)):
            log.warning("%s: not a state this version knows; Home Assistant's entities start "
                        "afresh", self.state_file)
            return empty
        people = {str(k): v for k, v in data["people"].items() if isinstance(v, dict)}
        cameras = [str(c) for c in data["cameras"]]
        return {**data, "people": people, "cameras": cameras}

    def _save(self) -> None:
        if self.state_file is None:
            return
        with self._lock:
            data = {"version": _STATE_VERSION, "prefix": self.layout.prefix,
                    "discovery_prefix": self.layout.discovery_prefix,
                    "cameras": list(self.cameras),
                    "people": {pid: {"name": name, "last_seen": asdict(self._seen[pid])
                                     if pid in self._seen else None}
                               for pid, name in self._people.items()}}
        path = self.state_file
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as exc:
            if not self._save_failed:
                log.warning("%s: cannot write (%s); after a restart Home Assistant's presence "
                            "starts from nobody seen", path, exc.strerror or exc)
            self._save_failed = True
            return
        self._save_failed = False


def _sighting(data: Any) -> Sighting | None:
    if not isinstance(data, dict):
        return None
    try:
        return Sighting(ts=float(data["ts"]), camera=str(data["camera"]),
                        score=float(data["score"]), track_id=int(data["track_id"]),
                        snapshot_url=data.get("snapshot_url"), crop_url=data.get("crop_url"))
    except (KeyError, TypeError, ValueError):
        return None


def home_assistant_for(config: DaemonConfig) -> HomeAssistant | None:
    """The Home Assistant side of a resolved config's MQTT output; None if it has none."""
    mqtt = config.outputs.mqtt
    if mqtt is None or not mqtt.home_assistant:
        return None
    assert config.state_dir is not None, "a resolved config has a state_dir"
    state_dir = Path(config.state_dir)
    return HomeAssistant(mqtt, config.camera_names, gallery=config.gallery_path,
                         # the inference process's gallery state (facewatch.inference.process)
                         gallery_state=gallery_cache_dir(state_dir),
                         snapshots_dir=config.snapshots.dir, state_file=state_dir / STATE_FILE)
