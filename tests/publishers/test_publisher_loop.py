"""The publisher process's loop, driven in this process: a plain queue in, the outbox, a real
mosquitto and the JSON-lines file out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from facewatch.config import load_resolved
from facewatch.events import Event, FaceUnknown, from_json
from facewatch.metrics import Metrics
from facewatch.publishers.process import PublisherLoop
from tests.support.daemon import MqttEvents, wait_until
from tests.support.mosquitto import Mosquitto
from tests.support.publishing import PlainInbox


def event(i: int) -> FaceUnknown:
    return FaceUnknown(camera="door", ts=1000.0 + i, track_id=i, score=0.1, bbox=(0, 0, 10, 10))


@pytest.fixture
def loop(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[PublisherLoop, PlainInbox[Event]]]:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "cameras": [{"name": "door", "url": str(tmp_path / "door.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": False, "jsonl": "events.jsonl",
                    "mqtt": {"host": mosquitto.host, "port": mosquitto.port}}}))
    events: PlainInbox[Event] = PlainInbox()
    the_loop = PublisherLoop(load_resolved(tmp_path / "config.yaml"), events, Metrics())
    the_loop.start()
    yield the_loop, events
    the_loop.stop()


def pump_until(the_loop: PublisherLoop, condition: Callable[[], bool], timeout_s: float,
               what: str) -> None:
    """Run the loop's steps (as its process would) until `condition` holds."""
    def stepped() -> bool:
        the_loop.step(0.05)
        return condition()

    wait_until(stepped, timeout_s, what)


def jsonl(tmp_path: Path) -> list[Event]:
    path = tmp_path / "events.jsonl"
    return [from_json(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_events_are_numbered_written_and_acknowledged(
        loop: tuple[PublisherLoop, PlainInbox[Event]], tmp_path: Path, mosquitto: Mosquitto) -> None:
    the_loop, events = loop
    subscriber = MqttEvents(mosquitto, "facewatch/events")
    try:
        for i in range(5):
            events.put(event(i))
        pump_until(the_loop, lambda: len(jsonl(tmp_path)) == 5, 20, "5 events written")
        assert [e.seq for e in jsonl(tmp_path)] == [1, 2, 3, 4, 5]
        pump_until(the_loop, lambda: the_loop.outbox.pending() == 0, 20,
                   "every event acknowledged by the broker")
        wait_until(lambda: len(subscriber.events) == 5, 20, "5 events over MQTT")
        assert [e.seq for e in subscriber.events] == [1, 2, 3, 4, 5]
    finally:
        subscriber.close()


def test_while_the_broker_is_away_events_wait_in_the_outbox_then_go_in_order(
        loop: tuple[PublisherLoop, PlainInbox[Event]], tmp_path: Path, mosquitto: Mosquitto) -> None:
    the_loop, events = loop
    subscriber = MqttEvents(mosquitto, "facewatch/events", session="loop-test")
    try:
        mosquitto.stop()
        for i in range(5):
            events.put(event(i))
        pump_until(the_loop, lambda: len(jsonl(tmp_path)) == 5, 20,
                   "5 events written while the broker is away")
        assert the_loop.outbox.pending() == 5
        mosquitto.start()
        pump_until(the_loop, lambda: the_loop.outbox.pending() == 0, 60,
                   "the outbox emptied once the broker is back")
        wait_until(lambda: {e.seq for e in subscriber.events} >= {1, 2, 3, 4, 5}, 30,
                   "the 5 events over MQTT")
        seqs = [e.seq for e in subscriber.events]
        assert seqs == sorted(seqs)
    finally:
        subscriber.close()
