"""Home Assistant's entities: every discovery payload checked against the keys Home Assistant
documents (tests/support/home_assistant.py) and every state against its entity; people's
entities following the gallery file; presence running out with time alone.  In process with a
clock the test moves, then for real: the publisher loop, a mosquitto broker, a gallery edited
on disk and a restart of the loop."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from facewatch.config import MqttOutput, load_resolved
from facewatch.events import CameraStatus, Event, FaceRecognized, FaceUnknown, TrackEnded
from facewatch.events.snapshots import SnapshotStore
from facewatch.events.urls import media_path, signature_valid
from facewatch.metrics import Metrics
from facewatch.publishers.home_assistant import (
    STATE_FILE,
    UNKNOWN_MAX_S,
    HomeAssistant,
    Layout,
    Message,
    person_slug,
)
from facewatch.publishers.process import PublisherLoop
from tests.support.daemon import MqttEvents, MqttMessage, wait_until, write_yaml
from tests.support.home_assistant import check_discovery, check_state
from tests.support.mosquitto import Mosquitto
from tests.support.publishing import PlainInbox

T0 = 1_718_000_000.0
TOKEN = "correct-horse-battery-staple-42"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings(**extra: Any) -> MqttOutput:
    return MqttOutput(host="127.0.0.1", home_assistant=True, **{"presence_minutes": 2, **extra})


def write_gallery(path: Path, examples: Path, people: dict[str, str]) -> Path:
    """A gallery YAML of real portraits: id → name."""
    photos = ["lin-manuel-miranda.png", "obama.jpg", "biden.jpg", "alex-lacamoire.png"]
    return write_yaml(path, {"people": [
        {"id": pid, "name": name, "images": [str(examples / photos[i % len(photos)])]}
        for i, (pid, name) in enumerate(people.items())]})


def snapshot_of(tmp_path: Path, examples: Path, camera: str, track_id: int) -> str:
    """A real snapshot, written as the inference process writes them."""
    image = cv2.imread(str(examples / "obama_small.jpg"))[:, :, ::-1]
    path = SnapshotStore(tmp_path / "snapshots").save(camera, str(track_id), image)
    assert path is not None
    return path


def recognized(pid: str, name: str, ts: float, track_id: int = 1, camera: str = "door",
               snapshot: str | None = None, **extra: Any) -> FaceRecognized:
    return FaceRecognized(camera=camera, ts=ts, track_id=track_id, identity=pid, name=name,
                          score=0.62, bbox=(10, 20, 110, 140), snapshot=snapshot, **extra)


def unknown(track_id: int, ts: float = T0, camera: str = "door") -> FaceUnknown:
    return FaceUnknown(camera=camera, ts=ts, track_id=track_id, score=0.1, bbox=(0, 0, 10, 10))


def ended(track_id: int, ts: float = T0, camera: str = "door", **extra: Any) -> TrackEnded:
    return TrackEnded(camera=camera, ts=ts, track_id=track_id, duration_s=1.0, **extra)


def on(messages: list[Message], topic: str) -> list[bytes]:
    return [m.payload for m in messages if m.topic == topic]


def entities_of(messages: list[Message]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every discovery config in `messages`, checked, by the state topics it reads."""
    by_state: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in messages:
        if m.topic.startswith("homeassistant/") and m.payload:
            component, config = check_discovery(m.topic, m.payload)
            for key in ("state_topic", "image_topic"):
                if key in config:
                    by_state.setdefault(config[key], (component, config))
    return by_state


def check_states(messages: list[Message], entities: dict[str, tuple[str, dict[str, Any]]]) -> int:
    """Every state in `messages` that an entity reads, checked against that entity."""
    checked = 0
    for m in messages:
        if m.topic in entities and m.payload:
            component, config = entities[m.topic]
            check_state(component, config, m.payload)
            checked += 1
    return checked


@pytest.fixture
def people_gallery(tmp_path: Path, examples: Path) -> Path:
    return write_gallery(tmp_path / "gallery.yaml", examples,
                         {"lin": "Lin-Manuel Miranda", "j.doe@home": "Jane Doe"})


# -- in process -----------------------------------------------------------------------------------

def test_every_discovery_payload_and_state_is_one_home_assistant_documents(
        tmp_path: Path, examples: Path, people_gallery: Path) -> None:
    clock = Clock()
    ha = HomeAssistant(settings(), ["door", "yard"], gallery=people_gallery,
                       snapshots_dir=tmp_path / "snapshots", clock=clock)
    ha.start()
    first = ha.announce()
    entities = entities_of(first)
    configs = [check_discovery(m.topic, m.payload) for m in first if m.topic.startswith("homeassistant/")]
    assert {c for c, _ in configs} == {"sensor", "binary_sensor", "image"}
    assert len(configs) == 2 * 4 + 2 * 3  # four per camera, three per person
    unique_ids = [config["unique_id"] for _, config in configs]
    assert len(set(unique_ids)) == len(unique_ids)
    # an id with characters a discovery topic cannot hold gets a slug of its own
    assert person_slug("j.doe@home") != person_slug("j_doe_home") and person_slug("lin") == "lin"
    assert any(f"person_{person_slug('j.doe@home')}_presence" in m.topic for m in first)
    lin = json.loads(on(first, "homeassistant/binary_sensor/facewatch/person_lin_presence/config")[0])
    assert lin["device"]["name"] == "Lin-Manuel Miranda" and lin["device_class"] == "presence"
    assert lin["state_topic"] == "facewatch/people/lin/presence"
    image = json.loads(on(first, "homeassistant/image/facewatch/door_last_face/config")[0])
    assert image["image_topic"] == "facewatch/door/last_face"

    events: list[Event] = [
        recognized("lin", "Lin-Manuel Miranda", T0, track_id=7,
                   snapshot=snapshot_of(tmp_path, examples, "door", 7),
                   snapshot_url="http://nvr.lan:8765/api/tracks/7/snapshot"),
        unknown(8), ended(8), ended(7, identity="lin", name="Lin-Manuel Miranda")]
    states = [m for e in events for m in ha.on_event(e)]
    clock.now += 600
    states += ha.tick() + ha.announce()
    # every retained state an entity reads passed its check: ON/OFF, an ISO time with a zone,
    # a JPEG for the image
    assert check_states(first + states, entities) >= 8
    shown = {m.topic for m in states if m.topic in entities and m.payload}
    assert {"facewatch/people/lin/last_seen", "facewatch/people/lin/presence",
            "facewatch/door/unknown_face", "facewatch/door/last_face"} <= shown
    seen = json.loads(on(states, "facewatch/people/lin/last_seen")[0])
    assert seen["camera"] == "door" and seen["track_id"] == 7
    assert seen["snapshot_url"] == "http://nvr.lan:8765/api/tracks/7/snapshot"


def test_presence_turns_off_after_the_window_without_any_event(tmp_path: Path,
                                                               people_gallery: Path) -> None:
    clock = Clock()
    ha = HomeAssistant(settings(presence_minutes=2), ["door"], gallery=people_gallery, clock=clock)
    ha.start()
    assert on(ha.announce(), "facewatch/people/lin/presence") == [b"OFF"]
    assert on(ha.on_event(recognized("lin", "Lin", T0)), "facewatch/people/lin/presence") == [b"ON"]
    clock.now = T0 + 60
    # seen again: the window starts again, nothing to say about presence
    assert on(ha.on_event(recognized("lin", "Lin", T0 + 60, track_id=2)),
              "facewatch/people/lin/presence") == []
    clock.now = T0 + 60 + 119.9
    assert ha.tick() == []
    clock.now = T0 + 60 + 120
    assert ha.tick() == [Message("facewatch/people/lin/presence", b"OFF")]
    assert ha.tick() == []  # said once
    # a sighting older than the window (an outbox's backlog after an outage) is recorded as
    # the last one seen but does not make anyone present
    clock.now = T0 + 1000
    late = ha.on_event(recognized("lin", "Lin", T0 + 500, track_id=3))
    assert json.loads(on(late, "facewatch/people/lin/last_seen")[0])["track_id"] == 3
    assert on(late, "facewatch/people/lin/presence") == []
    # and one older than what is known changes nothing
    assert on(ha.on_event(recognized("lin", "Lin", T0 + 10, track_id=4)),
              "facewatch/people/lin/last_seen") == []


def test_presence_and_the_last_sighting_survive_a_restart(tmp_path: Path, people_gallery: Path) -> None:
    state = tmp_path / STATE_FILE
    clock = Clock()

    def started() -> HomeAssistant:
        ha = HomeAssistant(settings(presence_minutes=2), ["door"], gallery=people_gallery,
                           state_file=state, clock=clock)
        ha.start()
        return ha

    first = started()
    first.on_event(recognized("lin", "Lin", T0, track_id=5))
    first.stop()
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    clock.now = T0 + 60
    again = started().announce()
    assert on(again, "facewatch/people/lin/presence") == [b"ON"]
    assert json.loads(on(again, "facewatch/people/lin/last_seen")[0])["track_id"] == 5
    clock.now = T0 + 121
    late = started()
    assert on(late.announce(), "facewatch/people/lin/presence") == [b"OFF"]
    assert on(late.announce(), "facewatch/people/lin/last_seen") != []  # still when they were seen


def test_people_follow_the_gallery_file(tmp_path: Path, examples: Path) -> None:
    path = write_gallery(tmp_path / "gallery.yaml", examples, {"lin": "Lin-Manuel Miranda"})
    clock = Clock()
    ha = HomeAssistant(settings(), ["door"], gallery=path, clock=clock, gallery_poll_s=2)
    ha.start()
    ha.announce()
    ha.on_event(recognized("lin", "Lin-Manuel Miranda", T0))
    assert ha.tick() == []  # nothing changed

    write_gallery(path, examples, {"lin": "Lin-Manuel Miranda", "michelle": "Michelle Obama"})
    clock.now += 2
    added = ha.tick()
    configs = [m for m in added if m.topic.startswith("homeassistant/")]
    assert sorted(m.topic for m in configs) == sorted(
        f"homeassistant/{c}/facewatch/person_michelle_{e}/config"
        for c, e in (("sensor", "last_seen"), ("sensor", "last_camera"), ("binary_sensor", "presence")))
    for m in configs:
        check_discovery(m.topic, m.payload)
    assert on(added, "facewatch/people/michelle/presence") == [b"OFF"]
    assert list(ha.people) == ["lin", "michelle"]

    write_gallery(path, examples, {"michelle": "Michelle LaVaughn Obama"})
    clock.now += 2
    changed = ha.tick()
    removed = [m for m in changed if "person_lin_" in m.topic or "/people/lin/" in m.topic]
    # Home Assistant deletes an entity whose config turns empty; the broker forgets an empty
    # retained state: configs first, so no live entity reads an empty state
    assert [m.payload for m in removed] == [b""] * 5 and all(m.retain for m in removed)
    assert [m.topic for m in removed][-2:] == ["facewatch/people/lin/last_seen",
                                              "facewatch/people/lin/presence"]
    renamed = json.loads(on(changed, "homeassistant/sensor/facewatch/person_michelle_last_seen/config")[0])
    assert renamed["device"]["name"] == "Michelle LaVaughn Obama"
    assert list(ha.people) == ["michelle"]
    assert ha.on_event(unknown(9)) and "lin" not in ha.people

    # a broken edit keeps everyone (the inference process keeps its running gallery too)
    path.write_text("people: [{id: michelle, images: [no-such.jpg]}]\n")
    clock.now += 2
    assert ha.tick() == [] and list(ha.people) == ["michelle"]


def test_a_person_recognised_before_the_gallery_is_read_again_gets_entities(
        tmp_path: Path, people_gallery: Path) -> None:
    ha = HomeAssistant(settings(), ["door"], gallery=people_gallery, clock=Clock())
    ha.start()
    out = ha.on_event(recognized("ada", "Ada Lovelace", T0))
    assert any(m.topic == "homeassistant/binary_sensor/facewatch/person_ada_presence/config" for m in out)
    assert on(out, "facewatch/people/ada/presence") == [b"ON"]


def test_people_and_cameras_removed_while_stopped_lose_their_entities_at_start(
        tmp_path: Path, examples: Path) -> None:
    path = write_gallery(tmp_path / "gallery.yaml", examples, {"lin": "Lin", "ada": "Ada"})
    state = tmp_path / STATE_FILE
    before = HomeAssistant(settings(), ["door", "yard"], gallery=path, state_file=state, clock=Clock())
    before.start()
    before.stop()
    write_gallery(path, examples, {"lin": "Lin"})
    after = HomeAssistant(settings(), ["door"], gallery=path, state_file=state, clock=Clock())
    after.start()
    first = after.announce()
    gone = {m.topic for m in first if m.payload == b""}
    layout = Layout("facewatch", "homeassistant")
    assert {layout.config_topic(e) for e in layout.person_entities("ada", "Ada")} <= gone
    assert {layout.config_topic(e) for e in layout.camera_entities("yard")} <= gone
    assert {"facewatch/people/ada/presence", "facewatch/yard/last_face"} <= gone
    assert not any("person_lin_" in t or "/door_" in t for t in gone)
    assert not any(m.payload == b"" for m in after.announce())  # removals are sent once


def test_a_new_topic_prefix_moves_every_entity(tmp_path: Path, people_gallery: Path) -> None:
    state = tmp_path / STATE_FILE
    old = HomeAssistant(settings(), ["door"], gallery=people_gallery, state_file=state, clock=Clock())
    old.start()
    new = HomeAssistant(settings(prefix="home/faces"), ["door"], gallery=people_gallery,
                        state_file=state, clock=Clock())
    new.start()
    first = new.announce()
    assert on(first, "homeassistant/binary_sensor/facewatch/person_lin_presence/config") == [b""]
    assert json.loads(on(first, "homeassistant/binary_sensor/home_faces/person_lin_presence/config")[0])


def test_the_unknown_face_sensor_follows_unknown_tracks() -> None:
    clock = Clock()
    ha = HomeAssistant(settings(), ["door"], clock=clock)
    ha.start()
    topic = "facewatch/door/unknown_face"
    assert on(ha.announce(), topic) == [b"OFF"]
    assert on(ha.on_event(unknown(1)), topic) == [b"ON"]
    assert on(ha.on_event(unknown(2)), topic) == []
    assert on(ha.on_event(ended(1)), topic) == []
    assert on(ha.on_event(ended(2)), topic) == [b"OFF"]
    # named after all: not a stranger any more
    ha.on_event(unknown(3))
    assert on(ha.on_event(recognized("lin", "Lin", T0, track_id=3)), topic) == [b"OFF"]
    # a camera that goes away takes its faces with it
    ha.on_event(unknown(4))
    assert on(ha.on_event(CameraStatus(camera="door", ts=T0, state="reconnecting")), topic) == [b"OFF"]
    # a track whose end never comes (an inference process killed outright) does not hold it on
    ha.on_event(unknown(5))
    clock.now += UNKNOWN_MAX_S - 1
    assert on(ha.tick(), topic) == []
    clock.now += 1
    assert on(ha.tick(), topic) == [b"OFF"]


def test_the_image_is_the_last_recognised_face_and_only_a_snapshot(tmp_path: Path,
                                                                  examples: Path) -> None:
    ha = HomeAssistant(settings(), ["door"], snapshots_dir=tmp_path / "snapshots", clock=Clock())
    ha.start()
    snapshot = snapshot_of(tmp_path, examples, "door", 11)
    out = ha.on_event(recognized("lin", "Lin", T0, track_id=11, snapshot=snapshot))
    assert on(out, "facewatch/door/last_face") == [Path(snapshot).read_bytes()]
    attributes = json.loads(on(out, "facewatch/door/last_face/attributes")[0])
    assert attributes["name"] == "Lin" and attributes["track_id"] == 11
    # the track's better view at its end replaces it; an unchanged one is not sent again
    assert on(ha.on_event(ended(11, identity="lin", name="Lin", snapshot=snapshot)),
              "facewatch/door/last_face") == []
    better = cv2.imread(str(examples / "obama.jpg"))[::4, ::4, ::-1]
    SnapshotStore(tmp_path / "snapshots").save("door", "11", better)
    assert on(ha.on_event(ended(11, identity="lin", name="Lin", snapshot=snapshot)),
              "facewatch/door/last_face") == [Path(snapshot).read_bytes()]
    # a path outside the snapshots folder is never read, even if an event names it
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(Path(snapshot).read_bytes())
    assert on(ha.on_event(recognized("lin", "Lin", T0 + 1, track_id=12, snapshot=str(elsewhere))),
              "facewatch/door/last_face") == []


# -- for real: the publisher loop and a broker ----------------------------------------------------

def loop_config(tmp_path: Path, mosquitto: Mosquitto, presence_minutes: float) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    return write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "door", "url": str(tmp_path / "door.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state", "snapshots": {"dir": "snapshots"},
        "outputs": {"zmq": False, "mqtt": {
            "host": mosquitto.host, "port": mosquitto.port, "home_assistant": True,
            "presence_minutes": presence_minutes}},
        "api": {"token_file": "token", "public_url": "http://nvr.test:8765"}})


class Running:
    """The publisher loop stepping in a thread, as its process runs it."""

    def __init__(self, config: Path) -> None:
        import threading

        self.events: PlainInbox[Event] = PlainInbox()
        self.loop = PublisherLoop(load_resolved(config), self.events, Metrics())
        self.loop.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.loop.step(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.loop.drain(0.5)
        self.loop.stop()


@pytest.fixture
def running() -> Iterator[Callable[[Path], Running]]:
    made: list[Running] = []

    def start(config: Path) -> Running:
        made.append(Running(config))
        return made[-1]

    yield start
    for r in made:
        if not r._stop.is_set():
            r.stop()


def retained(broker: Mosquitto, topics: list[str], settle_s: float = 1.0) -> dict[str, bytes]:
    """What a client connecting now receives as retained on `topics`."""
    client = MqttEvents(broker, "#")
    try:
        time.sleep(settle_s)  # retained messages come right after the SUBACK
        return {t: m.payload for t in topics for m in client.messages(t)[-1:] if m.retain}
    finally:
        client.close()


def last(client: MqttEvents, topic: str) -> MqttMessage | None:
    found = client.messages(topic)
    return found[-1] if found else None


def next_message(client: MqttEvents, topic: str, predicate: Callable[[MqttMessage], bool],
                 after: int, timeout_s: float, what: str) -> MqttMessage:
    """The first message on `topic` after the first `after` ones that matches."""
    found: list[MqttMessage] = []

    def seen() -> bool:
        found[:] = [m for m in client.messages(topic)[after:] if predicate(m)]
        return bool(found)

    wait_until(seen, timeout_s, f"{what} on {topic}",
               lambda: f"messages: {[m.payload[:80] for m in client.messages(topic)]}")
    return found[0]


def test_through_a_broker_entities_states_links_and_a_gallery_edit(
        tmp_path: Path, examples: Path, mosquitto: Mosquitto,
        running: Callable[[Path], Running]) -> None:
    gallery = write_gallery(tmp_path / "gallery.yaml", examples, {"lin": "Lin-Manuel Miranda"})
    config = loop_config(tmp_path, mosquitto, presence_minutes=0.05)  # 3 s
    ha = MqttEvents(mosquitto, "#")  # as Home Assistant subscribes: discovery and states
    layout = Layout("facewatch", "homeassistant")
    lin_configs = [layout.config_topic(e) for e in layout.person_entities("lin", "Lin-Manuel Miranda")]
    door_configs = [layout.config_topic(e) for e in layout.camera_entities("door")]
    presence = "facewatch/people/lin/presence"
    try:
        publisher = running(config)
        for topic in lin_configs + door_configs:
            ha.wait_for_message(topic, lambda m: bool(m.payload), 20, "a discovery config")
        entities: dict[str, tuple[str, dict[str, Any]]] = {}
        for m in ha.messages_under("homeassistant/"):
            component, conf = check_discovery(m.topic, m.payload)
            for key in ("state_topic", "image_topic"):
                if key in conf:
                    entities[conf[key]] = (component, conf)
        assert len(entities) == 3 + 2  # lin: last_seen (twice read), presence; door: 3 topics
        before = len(ha.messages(presence))

        snapshot = snapshot_of(tmp_path, examples, "door", 21)
        seen_at = time.time()
        publisher.events.put(recognized("lin", "Lin-Manuel Miranda", seen_at, track_id=21,
                                        snapshot=snapshot))
        next_message(ha, presence, lambda m: m.payload == b"ON", before, 20, "Lin present")
        event = json.loads(ha.wait_for_message("facewatch/events", lambda m: True, 20,
                                               "the event").payload)
        # the event links to its face on the API, signed for that one image
        url = event["snapshot_url"]
        assert url.startswith("http://nvr.test:8765" + media_path(21, "snapshot") + "?sig=")
        assert signature_valid(TOKEN, media_path(21, "snapshot"), url.rpartition("=")[2])
        assert not signature_valid(TOKEN, media_path(21, "crop"), url.rpartition("=")[2])
        assert event["crop_url"].startswith("http://nvr.test:8765" + media_path(21, "crop"))
        seen = ha.wait_for_message("facewatch/people/lin/last_seen", lambda m: True, 20, "last seen")
        assert json.loads(seen.payload)["snapshot_url"] == url
        face = ha.wait_for_message("facewatch/door/last_face", lambda m: True, 20, "the face")
        assert face.payload == Path(snapshot).read_bytes()
        for topic in (presence, "facewatch/people/lin/last_seen", "facewatch/door/last_face",
                      "facewatch/door/unknown_face"):
            message = last(ha, topic)
            assert message is not None and topic in entities
            check_state(*entities[topic], message.payload)

        # no event: presence turns off once the window has passed (and not before)
        on_at = len(ha.messages(presence))
        off = next_message(ha, presence, lambda m: m.payload == b"OFF", on_at, 30,
                           "Lin no longer present")
        assert off.received_at >= seen_at + 3.0

        # the gallery loses a person and gains one, on disk: entities follow within seconds
        write_gallery(gallery, examples, {"michelle": "Michelle Obama"})
        ha.wait_for_message("homeassistant/binary_sensor/facewatch/person_michelle_presence/config",
                            lambda m: bool(m.payload), 20, "Michelle's entities")
        for topic in lin_configs:
            ha.wait_for_message(topic, lambda m: m.payload == b"", 20, "Lin's entities removed")
        now = retained(mosquitto, lin_configs + [presence, "facewatch/people/lin/last_seen",
                                                 "facewatch/people/michelle/presence"])
        # nothing of Lin's is left on the broker for a Home Assistant that connects later
        assert now == {"facewatch/people/michelle/presence": b"OFF"}, now
    finally:
        ha.close()


def test_through_a_broker_presence_outlives_a_restart_of_the_publisher(
        tmp_path: Path, examples: Path, mosquitto: Mosquitto,
        running: Callable[[Path], Running]) -> None:
    write_gallery(tmp_path / "gallery.yaml", examples, {"lin": "Lin-Manuel Miranda"})
    window_s = 15.0
    config = loop_config(tmp_path, mosquitto, presence_minutes=window_s / 60)
    presence = "facewatch/people/lin/presence"
    watcher = MqttEvents(mosquitto, presence)
    try:
        first = running(config)
        seen_at = time.time()
        first.events.put(recognized("lin", "Lin-Manuel Miranda", seen_at, track_id=31))
        watcher.wait_for_message(presence, lambda m: m.payload == b"ON", 20, "Lin present")
        first.stop()
        # a broker that forgot everything (no persistence) learns it again from the new loop
        watcher.close()
        mosquitto.stop()
        mosquitto.start()
        watcher = MqttEvents(mosquitto, presence)
        running(config)
        again = watcher.wait_for_message(presence, lambda m: True, 20, "Lin's presence again")
        if again.received_at < seen_at + window_s:  # the restart took less than the window
            assert again.payload == b"ON"
        off = watcher.wait_for_message(presence, lambda m: m.payload == b"OFF", 40, "Lin gone")
        assert off.received_at >= seen_at + window_s
    finally:
        watcher.close()
